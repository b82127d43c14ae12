"""`python -m tenantflow.api.generate DIR... [--check]`: write (or verify) the CRD files.

`make crds` writes them to `crds/` and to the Helm chart's `crds/`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from tenantflow.api.admission import shard_label_policy
from tenantflow.api.crd import KINDS, crd

HEADER = "# Generated from operator/tenantflow/api by `make crds`. Do not edit.\n"


def rendered() -> dict[str, str]:
    """File name -> YAML text for every CRD, and the shard label policy that goes with
    them (applied with the CRDs, before any instance exists)."""
    docs = {f"{kind.plural}.yaml": [crd(kind)] for kind in KINDS}
    docs["shard-label-policy.yaml"] = shard_label_policy()
    return {
        name: HEADER + yaml.safe_dump_all(d, sort_keys=False, width=100) for name, d in docs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directories", type=Path, nargs="+")
    parser.add_argument("--check", action="store_true", help="fail if files differ")
    args = parser.parse_args(argv)
    stale = []
    for directory in args.directories:
        for name, text in rendered().items():
            path = directory / name
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path))
            else:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run `make crds`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
