"""Which shard a tenant belongs to, and which replica should hold a shard (pure).

A tenant's namespace hashes to one of a fixed number of shards. The operator labels the
namespace with it; an admission policy copies that label onto every WorkflowInstance
created there, so each replica can watch only its shards' instances
(`controllers/shards.py` owns the shards; docs/architecture.md, "Replicas").
"""

from __future__ import annotations

import hashlib

from tenantflow.vocabulary import SHARD_LABEL

SHARDS = 16  # the default count, fixed for the life of an install (TENANTFLOW_SHARDS)


def shard_of(namespace: str, shards: int) -> int:
    digest = hashlib.sha256(namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def owner(shard: int, members: list[str]) -> str | None:
    """Rendezvous hashing: the member with the highest score for the shard, so a member
    joining or leaving moves only its own share."""
    if not members:
        return None
    return max(members, key=lambda m: hashlib.sha256(f"{m}/{shard}".encode()).digest())


def selector(shard: int) -> str:
    """The label selector of one shard's instances."""
    return f"{SHARD_LABEL}={shard}"


UNLABELLED = f"!{SHARD_LABEL}"  # instances the policy did not label (made before it existed)
