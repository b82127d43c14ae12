"""What `up` started, persisted as state.json: `status`, `down`, `restart` and the watchdog
read it instead of guessing."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class State:
    """Ports, pids and command lines of the cluster's components."""

    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)  # to restart a component as-is
    restarts: dict[str, int] = field(default_factory=dict)  # by the watchdog, per component
    bin_dir: str = ""
    address: str = "127.0.0.1"  # where the API server listens (the node IP with a node)
    node: bool = False  # a real kubelet node runs pods (else only kwok's fake nodes)

    @classmethod
    def load(cls, path: Path) -> State | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        """Atomically: the watchdog and the CLI read it while the other writes."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
