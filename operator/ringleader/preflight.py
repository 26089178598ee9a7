"""Pre-flight: the network a group measured before its first step, judged (pure).

The trainer reports the group's all-reduce bus bandwidth and every link of a ring through its
ranks (reports.PreflightReport). A link is slow below the job's percent of the median link of
its kind: links inside a pod (shared memory, NVLink) and links between pods are not compared
with each other. A worker both of whose links are slow (what it received and what it sent) has
a slow network itself; a single slow link is named as a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ringleader import constants as c
from ringleader.apitime import from_epoch, truncate_to_second
from ringleader.reports import LinkReport, PreflightReport
from ringleader.statusmodels import PreflightResult

MAX_SLOW_LINKS = 16  # named in status; the rest are counted in the message


def slow_links(report: PreflightReport, percent: int) -> list[LinkReport]:
    """The links below percent of the median link of their kind, slowest first."""
    medians = {True: report.median_in_pod_gbps, False: report.median_across_pods_gbps}
    slow = []
    for link in report.links:
        median = medians[link.in_pod]
        if median is not None and link.gbps < median * percent / 100:
            slow.append(link)
    return sorted(slow, key=lambda link: link.gbps)


def slow_workers(slow: Sequence[LinkReport], world_size: int) -> list[str]:
    """Pods of the ranks both of whose links are slow (in a ring of three ranks or more: in a
    ring of two, both links join the same two ranks, and neither end can be blamed)."""
    if world_size < 3:
        return []
    received = {link.target for link in slow}
    sent = {link.source for link in slow}
    by_rank = {link.target: link.target_pod for link in slow}
    return sorted({by_rank[rank] for rank in received & sent})


def describe_link(link: LinkReport) -> str:
    """One link as status names it."""
    return f"{link.source_pod} -> {link.target_pod}: {link.gbps:.3g} GB/s"


def judge(report: PreflightReport, world_size: int, percent: int) -> PreflightResult:
    """status.preflight for a group's measurement."""
    slow = slow_links(report, percent)
    pods = slow_workers(slow, world_size)
    median = report.median_across_pods_gbps or report.median_in_pod_gbps
    figures = f"all-reduce bus bandwidth {report.bus_gbps:.3g} GB/s at {report.megabytes} MB"
    if median is not None:
        figures += f"; median link {median:.3g} GB/s"
    if pods:
        below = f"both of its links below {percent}% of the median"
        message = f"slow network on {', '.join(pods)} ({below}); {figures}"
    elif slow:
        named = ", ".join(describe_link(link) for link in slow[:3])
        message = f"{len(slow)} link(s) below {percent}% of the median: {named}; {figures}"
    else:
        message = f"no link below {percent}% of the median; {figures}"
    return PreflightResult(
        passed=not slow,
        world_size=world_size,
        bus_bandwidth_gbps=round(report.bus_gbps, 4),
        median_link_gbps=None if median is None else round(median, 4),
        slow_pods=pods or None,
        slow_links=[describe_link(link) for link in slow[:MAX_SLOW_LINKS]] or None,
        message=message,
        measured_at=measured_at(report),
    )


def measured_at(report: PreflightReport) -> datetime:
    """When the group measured, as status holds it (whole seconds)."""
    return truncate_to_second(from_epoch(report.measured_at))


def is_new(current: PreflightResult | None, report: PreflightReport | None) -> bool:
    """Whether the report tells of another measurement than the one in status."""
    return report is not None and (current is None or current.measured_at != measured_at(report))


def reason(result: PreflightResult) -> str:
    """The PreflightPassed condition's (and the event's) reason."""
    if result.passed:
        return c.REASON_NETWORK_AS_EXPECTED
    return c.REASON_SLOW_WORKER_NETWORK if result.slow_pods else c.REASON_SLOW_LINK
