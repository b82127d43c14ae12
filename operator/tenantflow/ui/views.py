"""What each page of the web UI shows, shaped from API objects (pure: dicts in, JSON out).

The browser only draws: the rows of the lists, the bars of an instance's timeline and the
aligned lines of a side-by-side diff are decided here, where they are unit-tested. The
rows of the lists are rows.py's, which the CLI's tables show too.
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any

from tenantflow.durations import format_time, parse_time
from tenantflow.lifecycle.source import Code
from tenantflow.ui.rows import archived_row as archived_row
from tenantflow.ui.rows import compensation, revision_row
from tenantflow.ui.rows import definition_row as definition_row
from tenantflow.ui.rows import instance_row as instance_row
from tenantflow.ui.rows import kube_event as kube_event
from tenantflow.ui.rows import tenant_row as tenant_row

MAX_TEXT = 64 * 1024  # params, outputs and payloads shown at most this long (as JSON)


def timeline(steps: list[dict[str, Any]], now: dt.datetime) -> dict[str, Any]:
    """The journal as bars: each step from its start to its end (now while it runs),
    what it waits for drawn as what it is (a sleep until its wake-up, an event wait until
    its timeout, a retry's backoff until the next attempt), and its attempts' errors."""
    bars: list[dict[str, Any]] = []
    for s in steps:
        start = parse_time(s["startedAt"]) if s.get("startedAt") else now
        end = parse_time(s["finishedAt"]) if s.get("finishedAt") else now
        wait_until = s.get("until") or s.get("nextAttemptAt")
        bars.append(
            {
                "name": s["name"],
                "kind": s["kind"],
                "state": s["state"],
                "attempts": s.get("attempts", 0),
                "start": format_time(start),
                "end": format_time(end),
                "open": not s.get("finishedAt"),
                "waitUntil": wait_until if not s.get("finishedAt") else None,
                "error": s.get("error"),
                "failures": s.get("failures") or [],
                "eventType": s.get("eventType"),
                "child": s.get("child"),
            }
        )
    times = [parse_time(b["start"]) for b in bars] + [parse_time(b["end"]) for b in bars]
    times += [parse_time(b["waitUntil"]) for b in bars if b["waitUntil"]]
    return {
        "bars": bars,
        "from": format_time(min(times)) if times else None,
        "to": format_time(max(times)) if times else None,
        "now": format_time(now),
    }


def inbox(inst: dict[str, Any]) -> list[dict[str, Any]]:
    """spec.events with when each arrived and which step consumed it."""
    st = inst.get("status") or {}
    seen = st.get("eventsSeen") or []
    used = {
        s.get("eventIndex"): s["name"]
        for s in st.get("steps") or []
        if s.get("eventIndex") is not None
    }
    return [
        {
            "index": i,
            "type": e.get("type"),
            "payload": e.get("payload"),
            "arrived": seen[i] if i < len(seen) else None,
            "consumedBy": used.get(i),
        }
        for i, e in enumerate((inst.get("spec") or {}).get("events") or [])
    ]


def instance_detail(
    inst: dict[str, Any], events: list[dict[str, Any]], now: dt.datetime
) -> dict[str, Any]:
    """Everything the instance page shows."""
    spec, st = inst.get("spec") or {}, inst.get("status") or {}
    return {
        **instance_row(inst),
        "params": spec.get("params"),
        "output": st.get("output"),
        "outputRef": st.get("outputRef"),
        "errorInfo": st.get("error"),
        "suspend": bool(spec.get("suspend")),
        "terminate": bool(spec.get("terminate")),
        "nextWakeAt": st.get("nextWakeAt"),
        "startedAt": st.get("startedAt"),
        "timeline": timeline(st.get("steps") or [], now),
        "compensation": compensation(st.get("steps") or []),
        "inbox": inbox(inst),
        "resets": st.get("resets") or [],
        "queries": st.get("queries") or [],  # step.query names: the page's Queries box
        "conditions": st.get("conditions") or [],
        "events": [kube_event(e) for e in events],
    }


def definition_detail(
    wfd: dict[str, Any], revisions: list[dict[str, Any]], per_revision: dict[int, dict[str, int]]
) -> dict[str, Any]:
    """Revisions (active, pinned, stable), the rollout, instances per revision by phase."""
    spec, st = wfd.get("spec") or {}, wfd.get("status") or {}
    return {
        "namespace": wfd["metadata"]["namespace"],
        "name": wfd["metadata"]["name"],
        "active": st.get("activeRevision"),
        "stable": st.get("stableRevision"),
        "pinned": spec.get("pinnedRevision"),
        "rolledBackTo": st.get("rolledBackTo"),
        "rollout": st.get("rollout"),
        "conditions": st.get("conditions") or [],
        "revisions": [
            {
                **revision_row(r, st.get("activeRevision")),
                "files": sorted(Code.from_revision(r["data"]).files),
                "instances": per_revision.get(int(r["revision"]), {}),
            }
            for r in sorted(revisions, key=lambda r: int(r["revision"]))
        ],
    }


def side_by_side(a: Code, b: Code) -> list[dict[str, Any]]:
    """Per file, rows of (left line, right line, what happened): equal, changed, added or
    removed lines aligned, as a side-by-side diff shows them."""
    files = []
    for name in sorted(set(a.files) | set(b.files)):
        left = a.files.get(name, "").splitlines()
        right = b.files.get(name, "").splitlines()
        rows: list[dict[str, Any]] = []
        matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            span = max(i2 - i1, j2 - j1)
            for k in range(span):
                li, rj = i1 + k, j1 + k
                rows.append(
                    {
                        "op": op,
                        "left": left[li] if li < i2 else None,
                        "leftNo": li + 1 if li < i2 else None,
                        "right": right[rj] if rj < j2 else None,
                        "rightNo": rj + 1 if rj < j2 else None,
                    }
                )
        status = "added" if name not in a.files else "removed" if name not in b.files else None
        changed = any(r["op"] != "equal" for r in rows)
        files.append(
            {"file": name, "status": status or ("changed" if changed else "same"), "rows": rows}
        )
    return files
