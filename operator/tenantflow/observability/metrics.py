"""The operator's Prometheus metrics (names are part of the user-facing contract)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INSTANCES = Gauge("tenantflow_instances", "WorkflowInstances by phase.", ["tenant", "phase"])
INSTANCE_STARTS = Counter("tenantflow_instance_starts_total", "Instances started.", ["tenant"])
CHILDREN_STARTED = Counter(
    "tenantflow_children_started_total", "Child instances started by step.child.", ["tenant"]
)
CHILDREN_RESYNCED = Counter(
    "tenantflow_children_resync_found_total",
    "Awaited children a parent's periodic re-read found finished or missing although the "
    "watch showed them active (each one is an event the watch lost; should stay 0).",
    ["tenant"],
)
RUNTIME_REVISIONS = Counter(
    "tenantflow_runtime_revisions_total",
    "Plans written at runtime (step.child with a source), by outcome: written (a new "
    "revision), reused (a revision held that source already), refused (the step failed).",
    ["tenant", "outcome"],
)
INSTANCE_FINISHED = Counter(
    "tenantflow_instance_finished_total", "Instances finished.", ["tenant", "phase"]
)
ROLLBACKS_STARTED = Counter(
    "tenantflow_rollbacks_started_total",
    "Rollbacks of completed steps started (compensation).",
    ["tenant"],
)
ROLLBACKS_SUCCEEDED = Counter(
    "tenantflow_rollbacks_succeeded_total", "Rollbacks that completed.", ["tenant"]
)
ROLLBACKS_FAILED = Counter(
    "tenantflow_rollbacks_failed_total",
    "Rollbacks out of retries (the instance ends RollbackFailed).",
    ["tenant"],
)
STEP_DURATION = Histogram("tenantflow_step_duration_seconds", "Step attempt durations.", ["tenant"])
STEP_ATTEMPTS = Counter(
    "tenantflow_step_attempts_total", "Step attempts by outcome.", ["tenant", "outcome"]
)
SANDBOX_INVOKE = Histogram(
    "tenantflow_sandbox_invoke_seconds", "Sandbox advance calls.", ["tenant"]
)
QUEUE_DEPTH = Gauge("tenantflow_queue_depth", "Instances waiting for admission.", ["tenant"])
RATE_LIMITED = Counter(
    "tenantflow_rate_limited_total", "Requests delayed by a tenant limit.", ["tenant", "limit"]
)
KUBE_WRITES = Counter(
    "tenantflow_kube_writes_total", "Writes the operator made to the API.", ["resource", "verb"]
)
ROLLOUT_WEIGHT = Gauge(
    "tenantflow_rollout_weight",
    "Percent of new instances a definition's newest revision gets (100 once promoted).",
    ["tenant", "definition"],
)
ROLLOUTS_ENDED = Counter(
    "tenantflow_rollouts_ended_total",
    "Rollouts by how they ended: Promoted, RolledBack, Aborted, Superseded.",
    ["tenant", "phase"],
)
SHARDS_HELD = Gauge(
    "tenantflow_shards_held",
    "Shards this replica holds and may act on (0 while it waits for one or is fenced).",
)
SHARD_HANDOVERS = Counter(
    "tenantflow_shard_handovers_total", "Shards gained or lost by this replica.", ["change"]
)
LEASE_LATE = Counter(
    "tenantflow_member_lease_late_total",
    "Renewals of this replica's member Lease sent after it had run out on its own clock "
    "(it stopped acting meanwhile; work that came in was deferred): a starved event loop "
    "or a slow API server.",
)
FENCED_WRITES = Counter(
    "tenantflow_fenced_writes_total",
    "Status writes not sent because this replica's shard lease could have run out.",
)
QUEUE_RETRIES = Counter(
    "tenantflow_work_queue_retries_total",
    "Runs that failed and were put back with backoff, by work queue.",
    ["queue"],
)
QUEUE_GATED = Counter(
    "tenantflow_work_queue_gated_total",
    "Runs the ownership gate refused: deferred (lease late) or dropped (another's shard).",
    ["queue", "verdict"],
)
QUEUE_DROPPED = Counter(
    "tenantflow_work_queue_dropped_total",
    "Keys forgotten because this replica lost their shard, by work queue.",
    ["queue"],
)
STATUS_CONFLICTS = Counter(
    "tenantflow_status_conflicts_total",
    "Status writes refused with 409: committed again on the fresh object, or given up.",
    ["kind", "outcome"],
)
ARCHIVES = Counter(
    "tenantflow_archives_total",
    "Finished instances archived into their tenant's history before deletion, or not yet.",
    ["tenant", "result"],  # archived, failed
)
SCHEDULE_RUNS = Counter(
    "tenantflow_schedule_runs_total",
    "Scheduled times of WorkflowSchedules, by what became of them.",
    ["tenant", "result"],  # started, skipped, missed, cancelled
)
REJECTED_RECORDS = Counter(
    "tenantflow_rejected_records_total",
    "Stored records (step results, offloaded outputs) an advance ignored because they failed "
    "their check: written or rewritten by tenant code (issue 33.3). Should stay 0.",
    ["tenant", "record"],  # stepResult, output
)
ATTRIBUTES_IGNORED = Counter(
    "tenantflow_attributes_ignored_total",
    "Search attributes of an advance's result ignored (undeclared, malformed, too many: "
    "tenant code rewriting its sandbox's answer), or not applied (the API refused them).",
    ["tenant", "reason"],  # invalid, refused
)
SANDBOX_SCALED_TO_ZERO = Gauge(
    "tenantflow_sandbox_scaled_to_zero",
    "1 while the tenant's sandbox is scaled to zero because it is idle (spec.sandbox.idleAfter).",
    ["tenant"],
)
SANDBOX_COLD_STARTS = Counter(
    "tenantflow_sandbox_cold_starts_total",
    "Sandboxes started from zero (by an instance that needed one, or ahead of a wake-up).",
    ["tenant"],
)
SANDBOX_COLD_START = Histogram(
    "tenantflow_sandbox_cold_start_seconds",
    "Seconds from scaling a sandbox up from zero to its being ready (the wake-up lead).",
    ["tenant"],
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300),
)
