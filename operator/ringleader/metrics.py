"""The operator's Prometheus metrics (served by `ringleader.handlers` on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
