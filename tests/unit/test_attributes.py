"""Search attributes read from an instance's params (issue 34.3): label-safe values, a
missing or structured field gives no label, and an instance always starts."""

from __future__ import annotations

import pytest

from tenantflow.lifecycle.attributes import labels_for

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
