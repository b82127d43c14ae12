"""The words of tenantflow's API, each defined once: the group and version, the kinds, an
instance's phases, the condition types, the tenant namespace prefix and the limits' defaults.

Everything else (the pydantic models that generate the CRDs, the controllers, the
supervisor, the CLI) imports them from here, as Argo's `wfv1.WorkflowRunning` and
CloudNativePG's `apiv1.Phase*` constants are imported. No imports: any layer may use it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

GROUP = "tenantflow.dev"
VERSION = "v1beta1"  # the version the operator reads and writes, and the CRDs' storage version
API_VERSION = f"{GROUP}/{VERSION}"
# earlier versions still served, each with the warning the API server gives its clients
# (kubectl prints it). Every served version has the same schema, so the API server converts
# between them by their apiVersion alone (conversion strategy None); objects stored in one
# are rewritten in VERSION by `tenantflow migrate-storage` (docs/operations.md, "Upgrades").
DEPRECATED_VERSIONS = {
    "v1alpha1": f"{GROUP}/v1alpha1 is deprecated: use {GROUP}/{VERSION} (the same fields)",
}
SERVED_VERSIONS = (VERSION, *DEPRECATED_VERSIONS)

TENANT = "Tenant"
DEFINITION = "WorkflowDefinition"
INSTANCE = "WorkflowInstance"
SCHEDULE = "WorkflowSchedule"

# the names Kubernetes accepts: a label value or namespace, an object's name
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

NAMESPACE_PREFIX = "tenant-"  # a Tenant `acme` owns the namespace `tenant-acme`


# A namespaced object's key in the work queues and bookkeeping, `namespace/name`: a str at
# run time (no cost on the hot path), a type of its own to mypy, so a key is only ever made
# by `object_key` and taken apart by `split_key` (a Tenant's queue keys are bare names)
ObjectKey = NewType("ObjectKey", str)


def object_key(namespace: str, name: str) -> ObjectKey:
    return ObjectKey(f"{namespace}/{name}")


def split_key(key: ObjectKey) -> tuple[str, str]:
    """(namespace, name) of an `object_key`."""
    namespace, _, name = key.partition("/")
    return namespace, name


def namespace_of(tenant: str) -> str:
    """The namespace a Tenant owns."""
    return f"{NAMESPACE_PREFIX}{tenant}"


def tenant_of(namespace: str) -> str:
    """The tenant a namespace belongs to (bookkeeping keys, even outside tenant-*)."""
    return namespace.removeprefix(NAMESPACE_PREFIX)


def tenant_owning(namespace: str) -> str | None:
    """The Tenant whose namespace this is; None for any other namespace (never driven)."""
    return (
        namespace.removeprefix(NAMESPACE_PREFIX) if namespace.startswith(NAMESPACE_PREFIX) else None
    )


# ---- metadata keys: every label and annotation tenantflow reads or writes
TENANT_LABEL = f"{GROUP}/tenant"  # the objects a Tenant owns, its namespace first
LEASE_ROLE_LABEL = f"{GROUP}/lease"  # the shards' Leases: member | shard
ANNOTATION_PREFIX = GROUP  # kopf's bookkeeping annotations and finalizer: tenantflow.dev/...
# a child instance: its parent's uid (a label, to list a parent's children), name and step
PARENT_UID_LABEL = f"{GROUP}/parent-uid"
PARENT_ANNOTATION = f"{GROUP}/parent"
PARENT_STEP_ANNOTATION = f"{GROUP}/parent-step"
# a definition's revision: the sha256 of its code; `tenantflow rollback`'s pin
SHA_ANNOTATION = f"{GROUP}/sha256"
ROLLBACK_ANNOTATION = f"{GROUP}/rollback-to"
RESET_ANNOTATION = f"{GROUP}/reset"  # `tenantflow reset|retry`'s request on an instance
ROLLOUT_COMMAND_ANNOTATION = f"{GROUP}/rollout-command"  # `tenantflow rollout ...`'s
# a tenant namespace's shard (tenancy.sharding), copied onto its instances on creation
SHARD_LABEL = f"{GROUP}/shard"
# a definition's revisions (ControllerRevisions) carry its name and their number
DEFINITION_LABEL = f"{GROUP}/definition"
REVISION_LABEL = f"{GROUP}/revision"
# an instance's definition, as a field selector names it (a selectable field of the CRD)
WORKFLOW_REF_FIELD = "spec.workflowRef.name"
DEFAULT_ENTRYPOINT = "run"  # the async function a definition's main module defines
DEFAULT_MAIN = "main"  # the module (file name without extension) of several that defines it
MAX_CODE_BYTES = 256 * 1024  # all files of a revision together (it lives in etcd twice)
MAX_FILES = 64  # files of a revision
DEFAULT_REVISION_HISTORY = 50  # revisions a definition keeps besides those in use
INSTANCES_PAGE = 50  # instances in one page, live or archived (the CLI, the UI, the history store)
# journal entries a live instance's status keeps; the older finished ones are in its
# tenant's history store (sandbox/pod/journal_window.py)
JOURNAL_WINDOW = 50
# search attributes a definition declares (lifecycle/attributes.py): label names without a
# prefix (ours and Kubernetes' are not the tenant's), each read from a params field
MAX_ATTRIBUTES = 16
ATTRIBUTE_KEY = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
PARAM_PATH = r"^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+){0,7}$"  # (no backslash: CEL strings)
SCHEDULE_LABEL = f"{GROUP}/schedule"  # a WorkflowSchedule's runs carry its name
SCHEDULED_AT_ANNOTATION = f"{GROUP}/scheduled-at"  # and the time they were scheduled for
# a finished instance to archive and delete now, not at its tenant's keepFinishedFor
# (a schedule's run beyond its history limits); the value says why
ARCHIVE_NOW_ANNOTATION = f"{GROUP}/archive-now"
# how spec.terminate ends an instance: "rollback" runs the rollbacks of its completed steps
# first (phase Compensating), then ends it Terminated; absent (or anything else): at once
TERMINATE_ANNOTATION = f"{GROUP}/terminate"
TERMINATE_ROLLBACK = "rollback"
# a definition written at runtime (`step.child(..., source=)`): labelled so (the only kind
# such a write may revise), and each of its revisions annotated with the instance that
# wrote it (the definition: with the last one)
WRITTEN_AT_RUNTIME_LABEL = f"{GROUP}/written-at-runtime"
WRITTEN_BY_ANNOTATION = f"{GROUP}/written-by"


class Phase(StrEnum):
    """A WorkflowInstance's `status.phase` (a str: compares equal to the status text)."""

    QUEUED = "Queued"
    RUNNING = "Running"
    WAITING = "Waiting"
    PAUSED = "Paused"
    COMPLETE = "Complete"
    ERRORED = "Errored"
    TERMINATED = "Terminated"
    # running the rollbacks of its completed steps, newest first (it failed, or it is being
    # terminated with rollback); it ends Errored (or Terminated) once they all ran
    COMPENSATING = "Compensating"
    # a rollback ran out of retries: the chain stopped there (status.error names it);
    # `tenantflow retry` runs that rollback again and resumes the chain
    ROLLBACK_FAILED = "RollbackFailed"


FINISHED = frozenset({Phase.COMPLETE, Phase.ERRORED, Phase.TERMINATED, Phase.ROLLBACK_FAILED})
# holding a concurrency slot
ACTIVE = frozenset({Phase.RUNNING, Phase.WAITING, Phase.PAUSED, Phase.COMPENSATING})


# the variables that name the egress proxy in the sandbox's worker (tenancy/egress.py sets
# them; urllib, requests, git, curl and Deno read them)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


class Language(StrEnum):
    """A definition's language (spec.source.language): what its one-module source is."""

    PYTHON = "python"
    TYPESCRIPT = "typescript"  # run by Deno (engine/typescript.py)
    JAVASCRIPT = "javascript"

    @property
    def extension(self) -> str:
        """The file a one-module source of this language is (`workflow.ts`)."""
        return {"python": ".py", "typescript": ".ts", "javascript": ".js"}[self.value]


class RolloutPhase(StrEnum):
    """A WorkflowDefinition's `status.rollout.phase`: a new revision's canary rollout."""

    PROGRESSING = "Progressing"  # taking its step's share of new instances
    PAUSED = "Paused"  # held by a pin (spec.pinnedRevision or `tenantflow rollback`)
    PROMOTED = "Promoted"  # stable: every new instance runs it
    ROLLED_BACK = "RolledBack"  # its error rate crossed maxErrorRate: new instances run stable
    ABORTED = "Aborted"  # `tenantflow rollout abort`
    SUPERSEDED = "Superseded"  # the source changed again before it finished


class ConditionType(StrEnum):
    # kstatus' trio, on every kind (what Flux, Argo CD and `kubectl wait` read): Ready;
    # Reconciling while the object is on its way; Stalled when it cannot get there
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    NAMESPACE_READY = "NamespaceReady"  # Tenant: its namespace is ours and Active
    STORAGE_READY = "StorageReady"  # Tenant: the PVC is Bound, the quota counts
    SANDBOX_READY = "SandboxReady"  # Tenant: its sandbox pods are ready
    SECRETS_READY = "SecretsReady"  # Tenant: the Secrets spec.sandbox.secrets names exist
    SANDBOX_SCALED_TO_ZERO = "SandboxScaledToZero"  # Tenant: idle, started on demand
    ADMITTED = "Admitted"  # WorkflowInstance: started, or why it is Queued
    SANDBOX_REACHABLE = "SandboxReachable"  # WorkflowInstance: its last sandbox call
    ARCHIVED = "Archived"  # WorkflowInstance: finished, and kept in its tenant's history


class Limits:
    """Defaults of `Tenant.spec.limits` (the CRD's defaults and the engine's fallbacks)."""

    MAX_CONCURRENT_INSTANCES = 100
    MAX_INSTANCE_STARTS_PER_SECOND = 10
    MAX_STEPS_PER_INSTANCE = 1000
    MAX_STEP_TIMEOUT_SECONDS = 900
    MAX_EVENTS_PER_SECOND = 50
    MAX_STORAGE_OPS_PER_SECOND = 500
    STORAGE = "1Gi"
    MAX_RUNTIME_REVISIONS_PER_HOUR = 100  # revisions written at runtime (step.child source=)


class RolloutDefaults:
    """Defaults of `WorkflowDefinition.spec.rollout` (the CRD's and the controller's)."""

    STEPS = (10, 50, 100)
    MIN_INSTANCES = 20
    MAX_ERROR_RATE = 0.2


# the tenant's history, read-only, through the API server's service proxy: the names of
# the sandbox Service's `history` port that the tenant's roles may proxy to (issue 34)
HISTORY_PROXY = ("sandbox:history", "http:sandbox:history")
