"""Times as the Kubernetes API writes them (RFC 3339, UTC, whole seconds) and as the trainer
reports them (seconds since the epoch): the one place both are parsed and formatted."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(value: str | None) -> datetime | None:
    """A status or metadata time (e.g. 2026-01-02T03:04:05Z); None for none."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serializes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_epoch(seconds: float) -> datetime:
    """A trainer's time (seconds since the epoch) as a UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def truncate_to_second(moment: datetime) -> datetime:
    """The moment as status keeps it: rounded down to the second."""
    return moment.replace(microsecond=0)
