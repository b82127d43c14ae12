"""The CLI's text views (pure: data in, text out): aligned tables of the rows the web UI
shows too (ui/rows.py), `kubectl get`'s printer columns, an instance's status."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any

from tenantflow import conditions
from tenantflow.api.crd import Kind
from tenantflow.durations import human_age, parse_time
from tenantflow.ui.rows import compensation, instance_row
from tenantflow.vocabulary import ConditionType, Phase

_JSON_PATH_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[([0-9]+)\]")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns three spaces apart, kubectl style; a missing value as nothing."""
    cells = [list(header), *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def columns(rows: Sequence[dict[str, Any]], shown: Sequence[tuple[str, str]]) -> str:
    """A table of these rows' fields: `shown` is (HEADER, field) pairs."""
    return table([h for h, _ in shown], [[row[f] for _, f in shown] for row in rows])


def printer_table(kind: Kind, items: list[dict[str, Any]], now: dt.datetime) -> str:
    """`kubectl get` of `kind`, from the CRD's additionalPrinterColumns (api/crd.py, their
    one home), so the CLI's table and kubectl's cannot disagree: the same columns, a
    missing value as `<none>`, a date as its age."""
    header = ["NAME", *(name.upper() for name, _, _ in kind.columns)]
    rows = [
        [
            item["metadata"]["name"],
            *(_cell(item, path, column_type, now) for _, column_type, path in kind.columns),
        ]
        for item in items
    ]
    return table(header, rows)


def _cell(item: dict[str, Any], path: str, column_type: str, now: dt.datetime) -> str:
    """One printer column's value; the JSONPath subset the columns use (`.a.b`, `[0]`)."""
    steps = list(_JSON_PATH_STEP.finditer(path))
    if "".join(m.group(0) for m in steps) != path:
        raise ValueError(f"printer column {path!r}: only .field and [index] are supported")
    value: Any = item
    for m in steps:
        if m.group(1) is not None:
            value = value.get(m.group(1)) if isinstance(value, dict) else None
        else:
            index = int(m.group(2))
            value = value[index] if isinstance(value, list) and index < len(value) else None
    if value is None:
        return "<none>"
    if column_type == "date":
        return human_age((now - parse_time(value)).total_seconds())
    if column_type == "boolean":
        return "true" if value else "false"
    return str(value)


def status_text(inst: dict[str, Any]) -> str:
    """`tenantflow status`: phase, what it is queued or waiting for, its error with the
    tenant code's traceback, its output."""
    st = inst.get("status") or {}
    # a revision is pinned when the instance starts: a Queued one has none yet
    revision = f"revision {st['revision']}" if st.get("revision") else "(no revision yet)"
    lines = [
        f"Instance:  {inst['metadata']['namespace']}/{inst['metadata']['name']}",
        f"Workflow:  {inst['spec']['workflowRef']['name']} {revision}",
        f"Phase:     {instance_row(inst)['phase']}",
    ]
    admitted = conditions.find(st.get("conditions"), ConditionType.ADMITTED)
    if admitted and admitted.get("status") == "False":
        lines.append(f"Queued:    {admitted.get('reason')}: {admitted.get('message')}")
    if st.get("waitingFor"):
        w = st["waitingFor"]
        lines.append(
            f"Waiting:   {w['kind']} {w.get('eventType') or ''} in step "
            f"{w.get('step')!r} until {w.get('until')}"
        )
    comp = compensation(st.get("steps") or [])
    if comp is not None:
        trigger = comp["trigger"]
        lines.append(
            f"Compensation: {comp['state']}, triggered by {trigger.get('name')}: "
            f"{trigger.get('message')}; {comp['done']} of {comp['owed']} rollback(s) done"
        )
        for rb in comp["rollbacks"]:
            error = f" ({rb['error']})" if rb.get("error") else ""
            lines.append(f"  {rb['name']:<30} {rb['state']:<9} {rb['attempts']} attempt(s){error}")
    if st.get("error"):
        e = st["error"]
        lines.append(f"Error:     {e['name']}: {e.get('message')} (step {e.get('step')!r})")
        lines.extend(f"           {line}" for line in traceback(st).splitlines())
        if st.get("phase") == Phase.ROLLBACK_FAILED:
            lines.append("           fix the cause, then `tenantflow retry` resumes the rollbacks")
    if "output" in st:
        lines.append(f"Output:    {json.dumps(st['output'])}")
    lines.append(f"Steps:     {st.get('stepCount', 0)}")
    return "\n".join(lines)


def traceback(st: dict[str, Any]) -> str:
    """The tenant code's traceback of an Errored instance: its own, or that of the step
    whose error ended it (the instance's error names the step, the step keeps the trace)."""
    error = st.get("error") or {}
    if error.get("traceback"):
        return str(error["traceback"])
    steps: list[dict[str, Any]] = st.get("steps") or []
    step = next((s for s in steps if s.get("name") == error.get("step")), {})
    return str((step.get("error") or {}).get("traceback") or "")
