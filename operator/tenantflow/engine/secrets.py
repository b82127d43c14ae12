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
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return iter(())
        return iter(n for n in names if SECRET_KEY.match(n))

    def __len__(self) -> int:
        return sum(1 for _ in self)


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
        if self.root is None:
            return iter(())
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return iter(())
        return iter(n for n in names if SECRET_NAME.match(n) and (self.root / n).is_dir())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def values_to_redact(self, shortest: int) -> list[str]:
        """Every value of every Secret at least `shortest` characters long, longest first
        (so a value containing another is replaced whole)."""
        if self.root is None:
            return []
        found: set[str] = set()
        for name in self:
            values = SecretValues(name, self.root / name)
            for key in values:
                value = values[key]  # a value and its trimmed form (files end in newlines)
                found.update(v for v in (value, value.strip()) if len(v) >= shortest)
        return sorted(found, key=len, reverse=True)
