"""Secret values are masked before any cut, and a cut never leaves the beginning of a
value at the end of what it keeps (`engine.masking`, the engine's error messages)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tenantflow.engine.executor import advance
from tenantflow.engine.journal import dump
from tenantflow.engine.masking import MASK, SHORTEST, cut, mask, mask_json, secret_values
from tenantflow.engine.outcome import Errored
from tenantflow.engine.state import MAX_ERROR_MESSAGE

SECRET = "s3cr3t-T0KEN-0123456789abcdef"
VALUES = [SECRET]
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def fragments(text: str) -> list[str]:
    """Every piece of SECRET (SHORTEST+ characters) that `text` ends with or contains."""
    pieces = (SECRET[i:j] for i in range(len(SECRET)) for j in range(i + SHORTEST, len(SECRET) + 1))
    return [p for p in pieces if p in text]


def test_whole_values_are_masked_in_strings_and_keys() -> None:
    value = {f"k-{SECRET}": [f"a {SECRET} b {SECRET}", 1, None]}
    assert mask_json(value, VALUES) == {f"k-{MASK}": [f"a {MASK} b {MASK}", 1, None]}


@pytest.mark.parametrize("limit", range(1, 60))
def test_a_cut_at_any_point_of_a_value_leaves_none_of_it(limit: int) -> None:
    text = "error: " + SECRET + " refused"
    kept = cut(text, limit, VALUES)
    assert len(kept) <= limit
    assert not fragments(kept), kept
    assert SECRET[:2] not in kept, kept  # nothing of it (the text around has no "s3")


@pytest.mark.parametrize("left", range(SHORTEST, len(SECRET)))
def test_a_string_already_cut_mid_value_has_that_end_masked(left: int) -> None:
    """What untrusted code cut (the engine in tenant code's process) arrives with part of
    a value at its end: from SHORTEST characters on, it is masked."""
    text = "x" * 100 + SECRET[:left]
    assert mask(text, VALUES) == "x" * 100 + MASK


def test_shorter_ends_and_ordinary_text_are_left_alone() -> None:
    assert mask("ends with s3c", VALUES) == "ends with s3c"  # SHORTEST is the floor
    assert mask("s3cr3t-T0KEN-0123456789abcdef!"[1:], VALUES) != MASK  # not a prefix
    assert mask("no secret here", VALUES) == "no secret here"
    assert mask_json({"a": "b"}, []) == {"a": "b"}


def test_the_longest_end_wins_and_a_value_containing_another_goes_whole() -> None:
    values = secret_values({"s": {"long": "abcd-efgh-ijkl", "inner": "abcd", "tiny": "ab"}})
    assert values == ["abcd-efgh-ijkl", "abcd"]
    assert mask("x abcd-efgh-ijkl y abcd", values) == f"x {MASK} y {MASK}"
    assert mask("x abcd-efgh-i", values) == f"x {MASK}"


def test_a_secret_that_cannot_be_read_masks_nothing() -> None:
    class Missing(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise KeyError(key)

    assert secret_values(Missing(gone={})) == []


def test_the_engine_masks_an_error_message_before_it_cuts_it() -> None:
    """A message of 4,096+ characters with a token where the cut falls: the journal keeps
    neither the token nor the part of it before the cut."""

    def fail() -> None:
        raise RuntimeError("x" * (MAX_ERROR_MESSAGE - 10) + SECRET)

    async def run(event: Any, step: Any) -> Any:
        return await step.do(f"push-{SECRET}", fail, retries={"limit": 0})

    result = advance(run, now=lambda: NOW, started_at=NOW, secrets={"git": {"token": SECRET}})
    (entry,) = dump(result.journal)
    message = entry["error"]["message"]
    assert len(message) <= MAX_ERROR_MESSAGE and message.endswith(MASK), message[-20:]
    assert not fragments(message)
    assert isinstance(result.outcome, Errored)
    assert not fragments(result.outcome.error["message"])
