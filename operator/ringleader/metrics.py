"""The operator's Prometheus metrics (served by `ringleader.handlers` on --metrics-port)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

Obj = dict[str, Any]
# What tells one recorded failure from another (fields the loop may add later are not in it).
FAILURE_IDENTITY = ("class", "pod", "podUID", "action", "time")

JOBS_BY_PHASE = Gauge(
    "ringleader_jobs", "DistributedTrainingJobs known to the operator, by phase", ["phase"]
)
RECONCILE_SECONDS = Histogram(
    "ringleader_reconcile_duration_seconds",
    "Time one reconcile of one job takes (observe, decide, act, write status)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter(
    "ringleader_reconcile_errors_total", "Reconciles that ended in an error and were retried"
)
API_WRITES = Counter(
    "ringleader_api_writes_total", "Writes the operator sent to the API server", ["verb", "kind"]
)
API_ERRORS = Counter(
    "ringleader_api_errors_total", "API calls answered with an error, by HTTP status", ["status"]
)

RECOVERIES = Counter(
    "ringleader_recoveries_total",
    "Recoveries the operator carried out, by failure class and the action the policy chose",
    ["class", "action"],
)
STEPS_LOST = Counter(
    "ringleader_steps_lost_total",
    "Training steps redone after failures: the step at the failure minus the newest checkpoint's",
    ["class"],
)
RECOVERY_SECONDS = Histogram(
    "ringleader_recovery_seconds",
    "Time from a failure the operator restarted to the first training step completed after it",
    ["action"],
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600),
)
GOODPUT = Gauge(
    "ringleader_job_goodput_ratio",
    "Share of a job's wall time since it started spent training: not before its first step, "
    "nor from a failure to the first step after it",
    ["namespace", "job"],
)
WORK_SPREAD = Gauge(
    "ringleader_job_worker_work_spread_ratio",
    "The slowest worker's own work per step (data and compute, not waiting) over the median "
    "worker's, from the trainer's figures: 1 for a balanced group",
    ["namespace", "job"],
)
STRAGGLERS = Gauge(
    "ringleader_job_stragglers",
    "Workers named as holding the others back now (status.stragglers)",
    ["namespace", "job"],
)

RESIZES = Counter(
    "ringleader_resizes_total",
    "Elastic groups seen training at another size than before, by direction",
    ["direction"],
)
RESIZE_SECONDS = Histogram(
    "ringleader_resize_seconds",
    "Time an elastic group spent re-forming: from the last progress report at the old size "
    "to the first at the new (as precise as the reports and polls)",
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300),
)


def observe_resize(old: int, new: int, seconds: float | None) -> None:
    """Count one resize of a group and, when known, the time it took."""
    RESIZES.labels("grow" if new > old else "shrink").inc()
    if seconds is not None and seconds >= 0:
        RESIZE_SECONDS.observe(seconds)


def new_recovery(old_status: Mapping[str, Any] | None, patch: Mapping[str, Any] | None) -> Obj:
    """status.lastFailure when this status patch records a new recovery decision, else {}."""
    last = (patch or {}).get("lastFailure")
    if not isinstance(last, Mapping) or not last.get("action"):
        return {}
    before = (old_status or {}).get("lastFailure") or {}
    # A patch that only fills in a field of the failure already recorded is no new recovery.
    if all(last.get(key) == before.get(key) for key in FAILURE_IDENTITY):
        return {}
    return dict(last)


def count_recovery(old_status: Mapping[str, Any] | None, patch: Mapping[str, Any] | None) -> None:
    """Count the recovery a status patch the operator has written records, if it records one."""
    last = new_recovery(old_status, patch)
    if not last:
        return
    klass = str(last.get("class"))
    RECOVERIES.labels(klass, str(last["action"])).inc()
    lost = last.get("stepsLost")
    if isinstance(lost, int) and lost >= 0:
        STEPS_LOST.labels(klass).inc(lost)


def observe_recoveries(recovered: Iterable[tuple[str, float]]) -> None:
    """Observe each (action, seconds from the failure to the next completed step)."""
    for action, seconds in recovered:
        RECOVERY_SECONDS.labels(action).observe(seconds)


def set_goodput(key: tuple[str, str], ratio: float | None) -> None:
    """Set a job's goodput (when there is one to tell yet)."""
    if ratio is not None:
        GOODPUT.labels(*key).set(ratio)


def forget_goodput(key: tuple[str, str]) -> None:
    """Drop a job's goodput series: the job is gone, or has not started (again)."""
    GOODPUT.remove(*key)


def set_worker_balance(key: tuple[str, str], spread: float | None, stragglers: int) -> None:
    """Set a job's work spread (when its workers report figures) and its stragglers."""
    if spread is not None:
        WORK_SPREAD.labels(*key).set(spread)
    STRAGGLERS.labels(*key).set(stragglers)


def forget_worker_balance(key: tuple[str, str]) -> None:
    """Drop a job's balance series: the job is gone."""
    WORK_SPREAD.remove(*key)
    STRAGGLERS.remove(*key)
