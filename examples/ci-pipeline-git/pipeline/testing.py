"""Run a checkout's unittest suite in a subprocess and report what ran and what failed."""

import re
import subprocess
import sys

RESULT = re.compile(r"^(\w+) \(([\w.]+)\) \.\.\. (ok|FAIL|ERROR)", re.MULTILINE)


def run_tests(path):
    done = subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-v"],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    results = RESULT.findall(done.stderr)
    failed = [where for _, where, verdict in results if verdict != "ok"]  # module.Class.test
    return {"ran": len(results), "failed": failed}
