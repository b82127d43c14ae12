"""What crosses the sandbox about stored records (issue 33.3): the frame by which a child
tells the runner of a completed step's result, the digests the runner hands the next
advance, and the report of records an advance rejected. The runner's side, which keeps the
digests out of tenant code's reach, is `sandbox.pod.vouch_store`.

The step-results store (`storage.step_results`) lives in the tenant's own database,
which tenant code can write, and the child that records a result runs tenant code in its
own process: a key there would be tenant code's too. So the child keeps only the bytes, and
the runner, which holds no tenant code, keeps their digests:

- as a step completes, the child sends a `result` frame (`{"step", "sha256"}`) before its
  answer; the runner stores the digest under the *run the operator named* in its signed
  request (`run_key`), never under anything the child says. Tenant code can have the
  runner vouch only for its own run, whose answer it could forge anyway;
- the next advance of that run is handed the digests (`payload["vouched"]`, which the
  runner always sets itself); the child recalls a row only if its bytes hash to the digest
  vouched for its step, and reports every other row of the run (`rejected` in its answer).

Offloaded outputs need no runner: they are content-addressed and their digest is in the
journal, in the instance's status (`storage.outputs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

RESULT = "result"  # frame child -> runner: a completed step's result {"step", "sha256"}
VOUCHED = "vouched"  # payload key runner -> child: {step: sha256} vouched for this run
REJECTED = "rejected"  # answer key child -> runner -> operator: [{record, step, problem}]
MAX_STEP_NAME = 256  # the engine's limit on a step's name
MAX_REJECTED = 16  # entries of an answer's report kept
MAX_PROBLEM = 256  # characters of each one's problem
RECORDS = frozenset({"stepResult", "output"})


def run_key(instance: Mapping[str, Any]) -> str:
    """One run of an instance, from what the operator's signed request names: the
    object's uid when it has one (a re-created instance of the same name is another run),
    else its id and start; and its reset epoch (a reset's steps run again: never recalled
    from before).

    Not the start alone: an instance's start is persisted with its first advance's result,
    so an operator that dies during that advance leaves none, and its successor starts the
    instance again with another `startedAt`. Keyed by the start, that second advance would
    be another run and could not recall the steps the first completed (found by the
    operator pod faults test: a 40 s first step ran once per operator pod change)."""
    epoch = instance.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
        raise ValueError("instance.epoch must be an integer")
    uid = instance.get("uid")
    if uid is not None and (not isinstance(uid, str) or not 0 < len(uid) <= 253):
        raise ValueError("instance.uid must be a string of 1 to 253 characters")
    run = f"uid:{uid}" if uid else f"{instance['id']}@{instance['startedAt']}"
    return run + (f"#{epoch}" if epoch else "")


def persisted(journal: Any) -> set[str]:
    """The steps the instance's status holds complete (the journal is their record now)."""
    if not isinstance(journal, list):
        return set()
    return {
        e["name"]
        for e in journal
        if isinstance(e, dict) and e.get("state") == "Complete" and isinstance(e.get("name"), str)
    }


def vouched_from_wire(value: Any) -> dict[str, str] | None:
    """The digests the runner handed this advance; None when there was no runner (then
    nothing stored is recalled)."""
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def checked_rejections(value: Any, cut: Callable[[str, int], str]) -> list[dict[str, str]]:
    """An answer's report of rejected records, as the runner passes it on and the operator
    reads it: well-formed entries only, at most MAX_REJECTED, cut with `cut` (the runner's
    masks before it cuts). It comes from the child, where tenant code can forge it: at
    worst it makes Warnings about its own run."""
    if not isinstance(value, list):
        return []
    out: list[dict[str, str]] = []
    for entry in value:
        if len(out) >= MAX_REJECTED:
            break
        if not isinstance(entry, dict):
            continue
        record, step, problem = entry.get("record"), entry.get("step"), entry.get("problem")
        if record in RECORDS and isinstance(step, str) and step and isinstance(problem, str):
            out.append(
                {"record": record, "step": cut(step, 253), "problem": cut(problem, MAX_PROBLEM)}
            )
    return out
