"""The CLI's exit codes, in one place: what a CI job can gate on.

`run --wait` and `status --watch` exit with the code of the phase the instance ended in;
`rollout status --wait` with 1 when the rollout was rolled back or aborted; any of them
with 4 when `--timeout` ran out first. Every other failure (the message on stderr says
what to do) is 1, and bad arguments are 2, as click (and argparse before it) make them.
"""

from __future__ import annotations

from enum import IntEnum

from tenantflow.vocabulary import Phase


class Exit(IntEnum):
    OK = 0  # done; what was waited for ended Complete (or Promoted)
    FAILED = 1  # an error; or the instance ended Errored, the rollout rolled back or aborted
    USAGE = 2  # bad arguments: the usage and what is wrong are printed
    TERMINATED = 3  # the instance ended Terminated (someone stopped it)
    TIMED_OUT = 4  # --wait/--watch: --timeout ran out before it finished
    INTERRUPTED = 130  # Ctrl-C


HELP = """\b
Exit codes:
  0  done (run --wait, status --watch: the instance ended Complete)
  1  an error, or the instance ended Errored or RollbackFailed (rollout status --wait: rolled back
     or aborted; a batch action: some instance failed)
  2  bad arguments
  3  the instance ended Terminated
  4  --wait/--watch: --timeout ran out before it finished"""


def of_phase(phase: str) -> Exit:
    """The exit code of a finished instance's phase (an unfinished one has none)."""
    codes = {
        Phase.COMPLETE: Exit.OK,
        Phase.ERRORED: Exit.FAILED,
        Phase.ROLLBACK_FAILED: Exit.FAILED,
        Phase.TERMINATED: Exit.TERMINATED,
    }
    if phase not in codes:
        raise ValueError(f"{phase!r} is not a finished phase")
    return codes[Phase(phase)]
