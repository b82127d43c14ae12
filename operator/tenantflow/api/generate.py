"""`python -m tenantflow.api.generate DIR [--check]`: write (or verify) crds/*.yaml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from tenantflow.api.crd import KINDS, crd

HEADER = "# Generated from operator/tenantflow/api by `make crds`. Do not edit.\n"


def rendered() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    return {
        f"{kind.plural}.yaml": HEADER + yaml.safe_dump(crd(kind), sort_keys=False, width=100)
        for kind in KINDS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if files differ")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = args.directory / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            args.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run `make crds`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
