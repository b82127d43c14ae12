"""WorkflowSchedule: start an instance of a definition on a cron schedule.

A kind of its own, not a field of WorkflowDefinition: a schedule has its own lifecycle
(pause it without touching the code), its own owner in Git and in RBAC (who may run a
pipeline nightly is not who may change it), and a definition can have several (nightly
with one set of params, hourly with another), as Argo's CronWorkflow and Temporal's
Schedules are objects apart from the workflow they start.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from tenantflow.api.common import (
    MAX_PARAM_PROPERTIES,
    Model,
    ObservedStatus,
    Resource,
    any_json,
    cel,
    duration_field,
    rule,
)
from tenantflow.api.instance import WorkflowRef

MAX_NAME = 52  # its runs are named <schedule>-<unix time> and labelled with its name

# The one form spec.schedule takes: five cron fields or a macro (Kubernetes CronJob's).
# croniter also reads a sixth field as *seconds, last*, so a Quartz-style expression with
# its seconds *first* (`*/10 * * * * *`) would quietly run every second: six or seven
# fields are refused by the CRD and by the operator, with the same words. The pattern has
# no backslash so that it reads the same in Python and in a CEL string literal.
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_TOKEN = "[-0-9A-Za-z*/,?#]+"
# below a minute, one explicit form: `@every <duration>` (robfig/cron's, as in Go tools),
# at whole multiples of the interval since the Unix epoch
EVERY = "@every "
_EVERY = f"{EVERY}([0-9]+(s|m|h))+"
CRON_PATTERN = f"^(({'|'.join(CRON_MACROS)})|{_EVERY}|{_CRON_TOKEN}( +{_CRON_TOKEN}){{4}})$"
CRON_FORM = (
    "five fields, minute hour day-of-month month day-of-week, e.g. '*/10 * * * *' for every "
    f"ten minutes or '0 2 * * *' for 02:00 every day, one of {', '.join(CRON_MACROS)}, or "
    "'@every 10s' for an interval (whole seconds, minutes or hours); a sixth field for "
    "seconds is not accepted"
)


class OverlapPolicy(StrEnum):
    """What a scheduled time does while an earlier run of the schedule is still active
    (Temporal's ScheduleOverlapPolicy; Argo's concurrencyPolicy)."""

    SKIP = "Skip"  # no run for this time (the default)
    BUFFER_ONE = "BufferOne"  # one run waits for the active one to finish; more are skipped
    ALLOW = "Allow"  # start anyway: runs overlap
    CANCEL_OTHER = "CancelOther"  # terminate the active runs, then start this one


class ScheduleDefaults:
    TIME_ZONE = "UTC"
    CATCHUP_WINDOW = "1h"
    NEXT_RUN_TIMES = 5
    SUCCESSFUL_RUNS = 3  # Kubernetes CronJob's successfulJobsHistoryLimit
    FAILED_RUNS = 1  # and its failedJobsHistoryLimit


class WorkflowScheduleSpec(Model):
    schedule: str = Field(
        min_length=1,
        max_length=256,
        description=f"Cron expression: {CRON_FORM}.",
        json_schema_extra=cel(
            rule(f"self.matches('{CRON_PATTERN}')", f"spec.schedule must be {CRON_FORM}")
        ),
    )
    time_zone: str = Field(
        ScheduleDefaults.TIME_ZONE,
        min_length=1,
        max_length=64,
        description="IANA time zone the expression is read in, e.g. Europe/Paris "
        "(daylight-saving changes as that zone has them).",
    )
    workflow_ref: WorkflowRef = Field(description="The definition (and revision) each run runs.")
    params: Any = any_json(
        "Params of every run (run()'s event['payload']).", maxProperties=MAX_PARAM_PROPERTIES
    )
    overlap_policy: OverlapPolicy = Field(
        OverlapPolicy.SKIP,
        description="Skip, BufferOne, Allow or CancelOther: what a scheduled time does "
        "while an earlier run is still active.",
    )
    catchup_window: str = duration_field(
        ScheduleDefaults.CATCHUP_WINDOW,
        "After the operator was down, scheduled times missed within this window still run "
        "(by the overlap policy); older ones are counted in status.missedRuns.",
    )
    suspend: bool = Field(
        False,
        description="true pauses the schedule: no runs start, and the times it passes are "
        "not caught up after it resumes.",
    )
    successful_runs_history_limit: int = Field(
        ScheduleDefaults.SUCCESSFUL_RUNS,
        ge=0,
        le=1000,
        description="Completed runs kept as objects; older ones are archived into the "
        "tenant's history (tenantflow archive) and deleted, as CronJob's "
        "successfulJobsHistoryLimit.",
    )
    failed_runs_history_limit: int = Field(
        ScheduleDefaults.FAILED_RUNS,
        ge=0,
        le=1000,
        description="Errored or Terminated runs kept as objects; older ones are archived "
        "and deleted, as CronJob's failedJobsHistoryLimit.",
    )


class WorkflowScheduleStatus(ObservedStatus):
    next_run_times: list[str] = Field(
        default_factory=list, description="The next scheduled times (RFC 3339)."
    )
    evaluated_until: str | None = Field(
        None, description="Every scheduled time up to this one was decided (started or not)."
    )
    last_schedule_time: str | None = Field(None, description="Scheduled time of the last run.")
    last_run: str | None = Field(None, description="The last run's WorkflowInstance.")
    active: list[str] = Field(default_factory=list, description="Runs not finished yet.")
    active_count: int = Field(0, description="len(active), for the ACTIVE column.")
    buffered: str | None = Field(
        None, description="A scheduled time waiting for the active run (BufferOne)."
    )
    runs_started: int = Field(0, description="Runs started.")
    runs_skipped: int = Field(0, description="Scheduled times skipped by the overlap policy.")
    missed_runs: int = Field(0, description="Scheduled times missed beyond the catch-up window.")


class WorkflowSchedule(Resource):
    """Starts a WorkflowInstance of a definition at each time of a cron schedule."""

    model_config = Resource.model_config | {
        "json_schema_extra": cel(
            rule(
                f"size(self.metadata.name) <= {MAX_NAME}",
                f"a WorkflowSchedule's name must have at most {MAX_NAME} characters (its runs "
                "are named after it and labelled with it); choose a shorter name",
            )
        )
    }

    kind: str = "WorkflowSchedule"
    spec: WorkflowScheduleSpec = Field(description="Desired state.")
    status: WorkflowScheduleStatus | None = Field(None, description="Observed state.")
