"""`make release`: build a release of this tree into dist/ (a dry run unless RELEASE_TAG=1).

    hack/release.py [build] [--tag] [--allow-dirty]   # images, chart, CRDs, SHA256SUMS
    hack/release.py check                             # every place names pyproject's version
    hack/release.py set-version 0.2.0                 # write a new version everywhere

The logic is dev/tenantflow_dev/devcluster/release.py; nothing is ever pushed.
"""

from __future__ import annotations

import sys

from tenantflow_dev.devcluster.release import main

if __name__ == "__main__":
    sys.exit(main())
