"""`python -m tenantflow.api.snapshot DIR [--check]`: the fields of each CRD, on record.

`make api-snapshot` writes DIR/<plural>.json: every field path of a kind's schema (as
the CRDs are generated from the pydantic models: `spec.workflowRef.name`, `status.steps[]`,
`status.lostAttempts{}.attempts`) with its type and, for enums, its values. Objects stored
by an earlier release hold those fields, so a field on record may never be removed or
change type (nor an enum lose a value) without a conversion. A conversion is put on
record by hand, in the file's `conversions` (path -> how objects written before are
converted, and since which release); a change to the entries of `status.steps` also
raises the journal's format version (engine/journal.py VERSION).

The versions the CRD serves are on record too (`servedVersions`): the API server may
hold objects stored in any of them, so one may stop being served only after every
cluster rewrote its objects in the storage version (`tenantflow migrate-storage`), and
with `"version vX": "how"` in `conversions`.

Adding fields is always fine: the writer records them. It refuses (exit 1, nothing
written) a removal or a change of type that has no conversion; `--check` (and
tests/unit/test_api_compat.py) fails on that, and on fields not yet on record.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tenantflow.api.crd import KINDS, Kind, openapi_schema
from tenantflow.engine import journal
from tenantflow.vocabulary import API_VERSION, SERVED_VERSIONS

Fields = dict[str, dict[str, Any]]


def field_types(schema: dict[str, Any], path: str = "") -> Fields:
    """Field path -> {"type": ..., "enum": [...]} for every field under `schema`."""
    out: Fields = {}
    for name, sub in (schema.get("properties") or {}).items():
        child = f"{path}.{name}" if path else name
        out[child] = _type(sub)
        out.update(field_types(sub, child))
        out.update(_nested(sub, child))
    return out


def _nested(schema: dict[str, Any], path: str) -> Fields:
    """A list's items (`path[]`) and a map's values (`path{}`), with their own fields."""
    out: Fields = {}
    for mark, sub in (("[]", schema.get("items")), ("{}", schema.get("additionalProperties"))):
        if isinstance(sub, dict):
            out[path + mark] = _type(sub)
            out.update(field_types(sub, path + mark))
            out.update(_nested(sub, path + mark))
    return out


def _type(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type") or (
        "any" if schema.get("x-kubernetes-preserve-unknown-fields") else "unspecified"
    )
    out: dict[str, Any] = {"type": kind}
    if "enum" in schema:
        out["enum"] = sorted(str(v) for v in schema["enum"])
    return out


def snapshot(kind: Kind) -> dict[str, Any]:
    """What is on record for `kind` now (conversions are added by hand, kept by `write`)."""
    record: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind.name,
        "servedVersions": sorted(SERVED_VERSIONS),
    }
    if kind.name == "WorkflowInstance":
        record["journalVersion"] = journal.VERSION
    fields = field_types(openapi_schema(kind.model))
    fields.pop("metadata", None)  # the API server's
    record["fields"] = dict(sorted(fields.items()))
    record["conversions"] = {}
    return record


def incompatible(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Fields on record that `now` lost or retyped (an enum losing a value), unless the
    record names their conversion."""
    conversions = recorded.get("conversions") or {}
    problems = [
        f"{recorded['kind']}: version {version} is no longer served (objects may be stored in "
        "it: run `tenantflow migrate-storage` on every cluster first, then name it in "
        "`conversions`)"
        for version in recorded.get("servedVersions") or []
        if version not in now["servedVersions"] and f"version {version}" not in conversions
    ]
    for path, was in recorded["fields"].items():
        if path in conversions:
            continue
        is_ = now["fields"].get(path)
        if is_ is None:
            problems.append(f"{recorded['kind']}: {path} ({was['type']}) was removed or renamed")
        elif is_["type"] != was["type"]:
            problems.append(
                f"{recorded['kind']}: {path} changed type from {was['type']} to {is_['type']}"
            )
        elif lost := sorted(
            set(was.get("enum") or []) - set(is_.get("enum") or was.get("enum") or [])
        ):
            problems.append(f"{recorded['kind']}: {path} no longer allows {', '.join(lost)}")
    return problems


def added(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What `now` has that is not on record yet (fields, enum values, a journal format)."""
    new = [f"{recorded['kind']}: {p}" for p in now["fields"] if p not in recorded["fields"]]
    new += [
        f"{recorded['kind']}: version {v}"
        for v in now["servedVersions"]
        if v not in (recorded.get("servedVersions") or [])
    ]
    if recorded.get("apiVersion") != now["apiVersion"]:
        new.append(f"{recorded['kind']}: stored as {now['apiVersion']}")
    for path, is_ in now["fields"].items():
        was = recorded["fields"].get(path)
        extra = sorted(set(is_.get("enum") or []) - set((was or {}).get("enum") or []))
        if was and extra:
            new.append(f"{recorded['kind']}: {path} allows {', '.join(extra)}")
    if recorded.get("journalVersion") != now.get("journalVersion"):
        new.append(f"{recorded['kind']}: journal format {now.get('journalVersion')}")
    return new


def render(record: dict[str, Any]) -> str:
    """JSON with one field per line (reviewable diffs)."""
    lines = []
    for key, value in record.items():
        if isinstance(value, dict) and value:
            inner = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            lines.append(f" {json.dumps(key)}: {{\n{inner}\n }}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if not compatible or stale")
    args = parser.parse_args(argv)
    broken, stale, records = [], [], {}
    for kind in KINDS:
        path = args.directory / f"{kind.plural}.json"
        now, recorded = snapshot(kind), _read(path)
        if recorded is not None:
            broken += incompatible(recorded, now)
            stale += added(recorded, now)
            now["conversions"] = recorded.get("conversions") or {}
        else:
            stale.append(f"{kind.name}: not on record")
        records[path] = now
    if broken:
        print(
            "fields stored objects hold were removed or changed without a conversion:\n  "
            + "\n  ".join(broken)
            + "\nkeep them, or convert what older releases wrote and name the conversion in "
            "the snapshot's `conversions` (operator/tenantflow/api/snapshot.py)",
            file=sys.stderr,
        )
        return 1
    if args.check:
        if stale:
            print("not on record yet: " + "; ".join(stale) + "; run `make api-snapshot`")
        return 1 if stale else 0
    args.directory.mkdir(parents=True, exist_ok=True)
    for path, record in records.items():
        path.write_text(render(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
