"""Search attributes (issue 34.3) read from an instance's params: label-safe values, a
missing or structured field gives no label, and an instance always starts; and those
workflow code set, as the runner and the operator check them before they become labels."""

from __future__ import annotations

import pytest

from tenantflow.engine import masking
from tenantflow.lifecycle.attributes import (
    MAX_SET_ATTRIBUTES,
    from_result,
    label_patch,
    labels_for,
)
from tenantflow.sandbox.pod.runner import check_result
from tenantflow.vocabulary import SHARD_LABEL

pytestmark = pytest.mark.unit


def test_each_declared_field_becomes_a_label_value() -> None:
    params = {"repo": "acme/web", "git": {"branch": "main"}, "pr": 42, "draft": False}
    declared = {"repo": "repo", "branch": "git.branch", "pr": "pr", "draft": "draft"}
    assert labels_for(params, declared) == {
        "repo": "acme-web",  # '/' is not a label character
        "branch": "main",
        "pr": "42",
        "draft": "false",
    }


def test_what_cannot_be_a_label_value_gives_no_label_or_is_cut_to_fit() -> None:
    params = {"list": [1], "obj": {"a": 1}, "long": "x" * 100 + "!", "odd": "..//..", "n": None}
    declared = {k: k for k in ("list", "obj", "long", "odd", "n", "absent")}
    assert labels_for(params, declared) == {"long": "x" * 63}
    assert labels_for(None, {"repo": "repo"}) == {}


def test_an_advances_attributes_are_kept_only_declared_and_well_formed() -> None:
    """They cross the sandbox: the runner and the operator keep what may become a label
    and say what they ignored, whatever tenant code wrote."""
    declared = {"status": "status", "coverage": "coverage"}
    kept, ignored = from_result(
        {
            "status": "tests passed",  # fitted again (the engine's are already)
            "coverage": None,  # removed
            SHARD_LABEL: "s-9",
            7: "seven",
            "huge": "x",
        },
        declared,
    )
    assert kept == {"status": "tests-passed", "coverage": None}
    assert len(ignored) == 3 and any(SHARD_LABEL in i for i in ignored)
    assert from_result({"status": "x" * 64}, declared) == (
        {},
        ["'status': not a string of at most 63 characters"],
    )
    assert from_result({"status": ["a"]}, declared)[0] == {}
    assert from_result({"status": "//"}, declared)[0] == {}, "nothing left: ignored"
    too_many = {f"a{i}": "v" for i in range(MAX_SET_ATTRIBUTES + 1)}
    assert from_result(too_many, {**declared, **{k: k for k in too_many}})[0] == {}
    assert from_result("status=x", declared)[0] == {}
    assert from_result(None, declared) == ({}, [])


def test_the_runner_masks_secret_values_and_drops_what_is_not_declared() -> None:
    answer = {
        "journal": [],
        "executed": [],
        "logs": [],
        "changed": False,
        "outcome": {"kind": "Yielded"},
        "attributes": {"status": "tok-s3cr3t-en", SHARD_LABEL: "s-9", "other": None},
    }

    def cut(text: str, limit: int) -> str:  # as the runner's Redactor, for one secret
        return masking.cut(text, limit, ["s3cr3t"])

    assert check_result(answer, cut, ["status"]) is None
    assert answer["attributes"] == {"status": "tok---en"}, "masked (***), then fitted"
    hostile = {**answer, "attributes": {"x": 1, "status": 5}}
    assert check_result(hostile, cut, ["status"]) is None, "the advance is not refused"
    assert "attributes" not in hostile, "nothing kept: no field"


def test_a_label_patch_holds_only_what_differs() -> None:
    have = {"status": "old", "team": "web"}
    assert label_patch(have, {"status": "old"}) == {}
    assert label_patch(have, {"status": "new", "coverage": None}) == {"status": "new"}
    assert label_patch(have, {"status": None}) == {"status": None}
    assert label_patch({}, {"status": None}) == {}
