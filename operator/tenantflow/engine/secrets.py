"""`env.secrets`: the Secrets the platform gave the tenant, read-only, from files.

In a sandbox pod every Secret the Tenant names (`spec.sandbox.secrets`) is a read-only
volume under one directory (`<root>/<secret>/<key>`, as the kubelet writes it), never an
environment variable. Values are read when tenant code asks for them, so a Secret that
the platform rotates is seen by the next read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a Secret's name (DNS subdomain)
SECRET_KEY = re.compile(r"^[-_a-zA-Z0-9][-._a-zA-Z0-9]*$")  # a data key; never `..data`
MAX_SECRET_BYTES = 1 << 20  # the API server's own limit for a Secret


def _names(directory: Path, pattern: re.Pattern[str]) -> list[str]:
    """The entries of `directory` that `pattern` allows, sorted (none if it is unreadable):
    the kubelet's own `..data` links never match."""
    try:
        return [n for n in sorted(os.listdir(directory)) if pattern.match(n)]
    except OSError:
        return []


class SecretNotFound(KeyError):
    """A Secret or key that is not there; the message says what the platform must do."""

    def __str__(self) -> str:  # KeyError would print the repr of its message
        return str(self.args[0])


class SecretValues(Mapping[str, str]):
    """One Secret: key → value (text)."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name, self.directory = name, directory

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str) or not SECRET_KEY.match(key):
            raise SecretNotFound(f"Secret {self.name!r} has no key {key!r}")
        try:
            with open(self.directory / key, "rb") as f:
                data = f.read(MAX_SECRET_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            keys = ", ".join(self) or "none"
            raise SecretNotFound(
                f"Secret {self.name!r} has no key {key!r} (its keys: {keys}); "
                "add the key to the Secret"
            ) from None
        return data[:MAX_SECRET_BYTES].decode("utf-8", errors="replace")

    def __iter__(self) -> Iterator[str]:
        return iter(_names(self.directory, SECRET_KEY))

    def __len__(self) -> int:
        return len(_names(self.directory, SECRET_KEY))


class Secrets(Mapping[str, SecretValues]):
    """`env.secrets["git"]["token"]`: the Secret `git`'s key `token`."""

    def __init__(self, root: str | None, namespace: str = "") -> None:
        self.root = Path(root) if root else None
        self.namespace = namespace

    def __getitem__(self, name: str) -> SecretValues:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        if self.root is None:
            raise SecretNotFound(
                f"Secret {name!r}: this sandbox has no secrets (they are given to sandbox "
                "pods, the cluster transport, through the Tenant's spec.sandbox.secrets)"
            )
        directory = self.root / name if isinstance(name, str) else None
        if directory is None or not SECRET_NAME.match(name) or not directory.is_dir():
            raise SecretNotFound(
                f"Secret {name!r} is not given to this tenant: the Tenant's "
                f"spec.sandbox.secrets must name it and it must exist{where}"
            )
        values = SecretValues(name, directory)
        if not len(values):
            raise SecretNotFound(
                f"Secret {name!r} is named in the Tenant's spec.sandbox.secrets but does not "
                f"exist{where} (or has no data); create it"
            )
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> list[str]:
        root = self.root
        if root is None:
            return []
        return [n for n in _names(root, SECRET_NAME) if (root / n).is_dir()]
