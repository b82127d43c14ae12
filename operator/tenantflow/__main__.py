"""`python -m tenantflow [args]`: the CLI; with no arguments, the operator."""

import sys

from tenantflow.cli.main import main

sys.exit(main(sys.argv[1:] or ["operator"]))
