"""Stragglers: a worker that holds the others back, found in the workers' own figures (pure).

In synchronous training every rank's step lasts as long as the slowest one's, so the step time
cannot name the slow one. The trainer reports each rank's step split into waiting for data,
computing and waiting on the group (reports.WorkerFigures, averaged over its last steps); a
rank whose own work (data and compute) stays far above the other ranks' median, report after
report for `steps` steps in a row, is a straggler. Once named, a rank stays named until it is
back within half the margin, so that one that hovers at the threshold does not flap.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ringleader import constants as c
from ringleader import pods
from ringleader.constants import StragglerAction
from ringleader.decisions import Event
from ringleader.models import DistributedTrainingJob, FailurePolicy, StragglerDetection
from ringleader.reports import ProgressReport, RankFigures
from ringleader.statusmodels import JobStatus, StragglerReport

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class SlowWatch:
    """The ranks seen slow in a row so far in one group, and since which step."""

    attempt: int
    world_size: int | None
    slow_since: Mapping[int, int] = field(default_factory=dict)  # rank -> step


def read_policy(job: DistributedTrainingJob) -> StragglerDetection:
    """spec.failurePolicy.stragglerDetection, with its defaults."""
    return (job.spec.failure_policy or FailurePolicy()).straggler_detection or StragglerDetection()


def is_slow(rank: RankFigures, baseline: float, percent: float) -> bool:
    """Whether the rank's work per step is percent above the baseline, and by enough to
    matter."""
    excess = rank.work - baseline
    return excess >= c.STRAGGLER_MIN_EXCESS_SECONDS and rank.work >= baseline * (1 + percent / 100)


def baselines(report: ProgressReport) -> dict[int, float]:
    """What each reported rank is measured against: the median of the other ranks when the
    report lists every rank (in a group of two, the other one: the median of both would be
    pulled halfway towards the slow one), else the trainer's median of every rank."""
    figures = report.workers
    if figures is None:
        return {}
    complete = len(figures.ranks) >= 2 and len(figures.ranks) == report.world_size
    out = {}
    for rank in figures.ranks:
        others = [r.work for r in figures.ranks if r.rank != rank.rank]
        out[rank.rank] = statistics.median(others) if complete else figures.median_work
    return out


def observe(
    watch: SlowWatch | None,
    attempt: int,
    report: ProgressReport | None,
    policy: StragglerDetection,
    named: Collection[str] = (),
) -> SlowWatch | None:
    """The watch after a report; a new attempt or group size starts it afresh (ranks change).

    named: the pods named already: they stay slow until back within half the margin."""
    figures = report.workers if report is not None else None
    if report is None or figures is None or not report.training or not policy.enabled:
        return watch if policy.enabled else None
    fresh = watch is None or watch.attempt != attempt or watch.world_size != report.world_size
    since = {} if fresh or watch is None else dict(watch.slow_since)
    slow, baseline = {}, baselines(report)
    for rank in figures.ranks:
        margin = policy.slower_by_percent / (2 if rank.pod in named else 1)
        if is_slow(rank, baseline[rank.rank], margin):
            slow[rank.rank] = since.get(rank.rank, report.step)
    return SlowWatch(attempt, report.world_size, slow)


def persistent(
    watch: SlowWatch | None, report: ProgressReport | None, policy: StragglerDetection
) -> list[RankFigures]:
    """The ranks of this report that have been slow for policy.steps steps in a row."""
    if watch is None or report is None or report.workers is None:
        return []
    return [
        rank
        for rank in report.workers.ranks
        if rank.rank in watch.slow_since
        and report.step - watch.slow_since[rank.rank] >= policy.steps
    ]


def plan_reports(
    current: Sequence[StragglerReport],
    slow: Sequence[RankFigures],
    report: ProgressReport,
    children: Sequence[Obj],
    now: datetime,
) -> list[StragglerReport]:
    """status.stragglers: the slow ranks' workers, each as it was first named (so a steady
    straggler writes nothing more), one entry per pod."""
    kept = {s.pod: s for s in current}
    baseline = baselines(report)
    by_name = {pods.name_of(p): p for p in children if pods.is_worker(p)}
    out: dict[str, StragglerReport] = {}
    for rank in sorted(slow, key=lambda r: r.rank):
        pod = by_name.get(rank.pod)
        if rank.pod in out or pod is None:
            continue  # named once, by its first slow process; a pod not seen is not named
        out[rank.pod] = kept.get(rank.pod) or StragglerReport(
            pod=rank.pod,
            podUID=pods.uid_of(pod),
            rank=rank.rank,
            node=pods.node_of(pod),
            slower_by_percent=_percent_over(rank.work, baseline[rank.rank]),
            work_seconds=round(rank.work, 4),
            median_work_seconds=round(baseline[rank.rank], 4),
            step=report.step,
            since=now,
        )
    return list(out.values())


def _percent_over(work: float, baseline: float) -> int:
    return round(100 * (work / baseline - 1)) if baseline > 0 else 0


def newly_named(
    before: Sequence[StragglerReport], after: Sequence[StragglerReport]
) -> list[StragglerReport]:
    """The stragglers named in `after` that `before` did not name."""
    known = {s.pod for s in before}
    return [s for s in after if s.pod not in known]


def describe(straggler: StragglerReport, steps: int) -> str:
    """The Straggler event's and condition's words for one straggler."""
    node = f" on node {straggler.node}" if straggler.node else ""
    return (
        f"{straggler.pod} (rank {straggler.rank}{node}) holds the others back: its own work took "
        f"{straggler.work_seconds:.3f}s a step against the other workers' median of "
        f"{straggler.median_work_seconds:.3f}s ({straggler.slower_by_percent}% slower) for "
        f"{steps} steps in a row"
    )


def spread(report: ProgressReport | None) -> float | None:
    """The slowest rank's work over the median rank's: 1.0 for a balanced group."""
    figures = report.workers if report is not None else None
    if figures is None or not figures.ranks or figures.median_work <= 0:
        return None
    return max(rank.work for rank in figures.ranks) / figures.median_work


@dataclass(frozen=True)
class Replacement:
    """What the reconcile loop does about named stragglers under action ReplacePod."""

    stragglers: list[StragglerReport]
    avoided_nodes: list[str]
    delete_pods: list[str]
    events: list[Event]


def plan_replacements(
    policy: StragglerDetection, status: JobStatus, workers: Sequence[Obj]
) -> Replacement | None:
    """Delete each named straggler's pod once, and keep the job's later workers off its node
    (status.avoidedNodes: its replacement cannot land there again); None when nothing is to do.

    At most MAX_AVOIDED_NODES nodes are avoided: a straggler that follows the job from node to
    node is slow for another reason, and is then only reported."""
    if policy.action != StragglerAction.REPLACE_POD or status.phase not in c.TRAINING_PHASES:
        return None
    attempt = status.restart_attempt or 0
    live = {
        pods.name_of(p): p
        for p in workers
        if pods.in_attempt(p, attempt) and not pods.is_leaving(p) and pods.node_of(p)
    }
    avoided, kept, deleted, events = list(status.avoided_nodes or []), [], [], []
    for straggler in status.stragglers or []:
        pod = live.get(straggler.pod)
        # By uid too: the very pod that was slow, not another that might hold its name.
        if (
            pod is None
            or pods.uid_of(pod) != straggler.pod_uid
            or straggler.replaced
            or len(avoided) >= c.MAX_AVOIDED_NODES
        ):
            kept.append(straggler)
            continue
        node = str(pods.node_of(pod))
        avoided += [node] if node not in avoided else []
        deleted.append(straggler.pod)
        kept.append(straggler.model_copy(update={"replaced": True}))
        why = f"{straggler.pod} deleted to be replaced off node {node}, which the job avoids now"
        events.append(Event("Warning", c.REASON_STRAGGLER_REPLACED, why))
    return Replacement(kept, avoided, deleted, events) if deleted else None
