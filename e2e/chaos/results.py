"""e2e/chaos/results/latest.json: the reliability and isolation figures, merged by key
(the chaos run and the isolation matrix each write their own part), with the machine noted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.machine import machine

LATEST = Path(__file__).resolve().parent / "results" / "latest.json"


def record(section: str, figures: dict[str, Any]) -> None:
    """Merge `figures` (flat, top-level keys) and keep what each section measured when."""
    LATEST.parent.mkdir(exist_ok=True)
    doc: dict[str, Any] = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    doc.update(figures)
    doc.setdefault("sections", {})[section] = machine()
    LATEST.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(json.dumps({section: figures}))


LONG_RUN_FAULTS = 1000  # a `make chaos` run: kept in `runs` (short `make test` runs are not)
KEPT_RUNS = 3


def record_run(figures: dict[str, Any]) -> None:
    """Append a long run's summary to `runs` (the last KEPT_RUNS), next to `latest`'s."""
    if figures["faults_injected"] < LONG_RUN_FAULTS:
        return
    doc: dict[str, Any] = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    keys = (
        "chaos_seed",
        "faults_injected",
        "instances",
        "instances_lost",
        "duplicate_completions",
        "persisted_steps_rerun",
        "wrong_outputs",
        "chaos_seconds",
    )
    run = {k: figures[k] for k in keys} | {"measuredAt": machine()["measuredAt"]}
    doc["runs"] = [*doc.get("runs", []), run][-KEPT_RUNS:]
    LATEST.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
