"""env.secrets reads the Tenant's Secrets from the kubelet's read-only volumes, says what
is missing and how to fix it, stays inside its directory, and the runner masks every known
value in what a worker answers (outputs, errors, journal, logs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tenantflow.engine.masking import MASK
from tenantflow.engine.secrets import SecretNotFound, Secrets
from tenantflow.sandbox.pod import worker
from tenantflow.sandbox.pod.redact import Redactor
from tenantflow.sandbox.protocol.payload import advance_payload

TOKEN = "ghp_s3cr3t-token-value"


def kubelet_volume(root: Path, name: str, data: dict[str, str]) -> None:
    """A Secret volume as the kubelet writes it: files behind `..data` symlinks."""
    volume = root / name
    stamp = volume / "..2026_11_27_23_00_00.000000001"
    stamp.mkdir(parents=True)
    for key, value in data.items():
        (stamp / key).write_text(value)
    os.symlink(stamp.name, volume / "..data")
    for key in data:
        os.symlink(f"..data/{key}", volume / key)


@pytest.fixture
def secrets(tmp_path: Path) -> Secrets:
    kubelet_volume(tmp_path, "git", {"token": TOKEN + "\n", "user": "ci"})
    (tmp_path / "registry").mkdir()  # named by the Tenant, not created yet (optional volume)
    (tmp_path / "outside.txt").write_text("not a secret")
    return Secrets(str(tmp_path), "tenant-acme")


def test_values_are_read_by_name_and_key(secrets: Secrets) -> None:
    assert secrets["git"]["token"] == TOKEN + "\n"
    assert dict(secrets["git"]) == {"token": TOKEN + "\n", "user": "ci"}
    assert list(secrets) == ["git", "registry"]


@pytest.mark.parametrize(
    ("name", "key", "says"),
    [
        ("npm", "token", "spec.sandbox.secrets must name it and it must exist in namespace"),
        ("registry", "x", "does not exist in namespace tenant-acme"),
        ("git", "password", "has no key 'password' (its keys: token, user)"),
        # an attacker's names: nothing outside a Secret's own files is reachable
        ("..", "outside.txt", "is not given to this tenant"),
        ("git", "..data", "has no key"),
        ("git", "../git/token", "has no key"),
        ("git/..", "git", "is not given to this tenant"),
        ("/etc", "passwd", "is not given to this tenant"),
    ],
)
def test_what_is_missing_is_a_clear_error(secrets: Secrets, name: str, key: str, says: str) -> None:
    with pytest.raises(SecretNotFound) as raised:
        secrets[name][key]
    assert says in str(raised.value)


def test_a_sandbox_without_secrets_says_where_they_come_from() -> None:
    with pytest.raises(SecretNotFound, match=r"spec\.sandbox\.secrets"):
        Secrets(None)["git"]


def test_the_runner_masks_known_values_in_every_part_of_an_answer(
    secrets: Secrets, tmp_path: Path
) -> None:
    source = (
        "async def run(event, step, env):\n"
        "    token = env.secrets['git']['token'].strip()\n"
        "    env.log.info(f'cloning with {token}', auth=token)\n"
        "    got = await step.do('config', lambda: {token: {'url': f'https://{token}@git'}})\n"
        "    try:\n"
        "        await step.do('push', lambda: fail(token), retries={'limit': 0})\n"
        "    except Exception:\n"
        "        pass\n"
        "    missing = await step.do('missing', lambda: str(env.secrets['git']['nope']),\n"
        "                            retries={'limit': 0})\n"
        "    return got\n"
        "def fail(token):\n"
        "    raise RuntimeError(f'push refused for {token}')\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    payload = advance_payload(source=source, instance_id="i", started_at="2030-01-01T00:00:00Z")
    answer = worker.run(payload, str(data), "acme", secrets_dir=str(secrets.root))
    raw = json.dumps(answer)
    assert TOKEN in raw, "the worker itself does not mask (tenant code could undo it)"
    masked = json.dumps(Redactor(secrets).redact(answer))
    assert TOKEN not in masked
    assert masked.count(MASK) >= 5, masked  # log message, field, key, value, error
    assert "has no key 'nope'" in masked  # the clear error reaches the status


def test_short_values_are_not_masked_and_longer_ones_win(tmp_path: Path) -> None:
    kubelet_volume(tmp_path, "s", {"short": "ci", "long": "abcd-efgh", "inner": "abcd"})
    redactor = Redactor(Secrets(str(tmp_path)))
    assert redactor.redact({"x": "ci abcd-efgh abcd"}) == {"x": f"ci {MASK} {MASK}"}
