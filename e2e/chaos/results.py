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
KEPT_RUNS = 10  # a verdict is several seeds' runs, not one (issue 41)
EVIDENCE = LATEST.parent / "evidence"


def keep_evidence(operator_log: str, stuck: list[dict[str, Any]]) -> Path:
    """The operator's log tail and the stuck instances, written where a failing run
    leaves them (e2e/chaos/results/evidence/): what a reader needs to find the cause."""
    EVIDENCE.mkdir(parents=True, exist_ok=True)
    stamp = machine()["measuredAt"].replace(":", "")
    (EVIDENCE / f"{stamp}-operator.log").write_text(operator_log)
    out = EVIDENCE / f"{stamp}-stuck.json"
    out.write_text(json.dumps(stuck, indent=2, sort_keys=True) + "\n")
    print(f"chaos evidence: {out} and its operator log")
    return out


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
        "parents_without_exactly_one_child",
        "chaos_seconds",
    )
    run = {k: figures[k] for k in keys} | {"measuredAt": machine()["measuredAt"]}
    doc["runs"] = [*doc.get("runs", []), run][-KEPT_RUNS:]
    LATEST.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
