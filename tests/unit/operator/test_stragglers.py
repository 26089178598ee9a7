"""Stragglers: named from the workers' own figures after enough slow steps in a row, never on
noise; in status (a condition, an event), and under ReplacePod replaced once, off their node."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from ringleader import builders, pods, stragglers
from ringleader import poller as poller_module
from ringleader.models import StragglerDetection
from ringleader.reconcile import plan_reconcile
from ringleader.reports import ProgressReport, RankFigures, WorkerFigures, parse_progress
from ringleader.status import compute_status
from ringleader.statusmodels import JobStatus, StragglerReport
from tests.unit.operator.jobs import make_job, parse
from tests.unit.operator.test_poller_hang import PatchRecorder, poller_knowing
from tests.unit.operator.test_reconcile_plan import NOW, running
from tests.unit.operator.test_reconcile_recovery import apply, settled

Obj = dict[str, Any]
POLICY = StragglerDetection(slower_by_percent=50, steps=20)
WORKERS = ("digits-worker-0-a0-x7k2p", "digits-worker-1-a0-x7k2p")  # by replica index


def report(step: int, works: tuple[float, ...], world: int = 2) -> ProgressReport:
    """A report at `step` whose ranks (one per worker) did this much work per step."""
    ranks = tuple(
        RankFigures(rank, WORKERS[rank % 2], data=0.0, compute=work, communication=0.0)
        for rank, work in enumerate(works)
    )
    median = sorted(works)[len(works) // 2] if len(works) % 2 else sum(works) / len(works)
    return ProgressReport(step=step, world_size=world, workers=WorkerFigures(20, median, ranks))


def watch_through(
    steps: range, works: tuple[float, ...], watch: stragglers.SlowWatch | None = None
) -> stragglers.SlowWatch | None:
    for step in steps:
        watch = stragglers.observe(watch, 0, report(step, works), POLICY)
    return watch


def slow_ranks(
    watch: stragglers.SlowWatch | None, step: int, works: tuple[float, ...]
) -> list[int]:
    return [r.rank for r in stragglers.persistent(watch, report(step, works), POLICY)]


def test_a_rank_slow_for_the_policys_steps_in_a_row_is_a_straggler() -> None:
    works = (0.05, 0.2)  # rank 1: four times the other's work
    watch = watch_through(range(100, 119), works)
    assert slow_ranks(watch, 119, works) == []  # 19 steps: not yet
    watch = watch_through(range(119, 121), works, watch)
    assert slow_ranks(watch, 120, works) == [1]


def test_one_fast_report_starts_the_count_again() -> None:
    works = (0.05, 0.2)
    watch = watch_through(range(100, 115), works)
    watch = watch_through(range(115, 116), (0.05, 0.05), watch)
    watch = watch_through(range(116, 130), works, watch)
    assert slow_ranks(watch, 129, works) == []


@pytest.mark.parametrize(
    "works",
    [
        (0.005, 0.015),  # three times slower, but by 10 ms: noise on a busy node
        (0.2, 0.28),  # 40 % slower: below the margin
    ],
)
def test_noise_and_a_small_imbalance_are_not_stragglers(works: tuple[float, ...]) -> None:
    watch = watch_through(range(0, 200), works)
    assert slow_ranks(watch, 199, works) == []


def test_a_named_straggler_stays_named_until_within_half_the_margin() -> None:
    named = {WORKERS[1]}
    watch = watch_through(range(0, 30), (0.1, 0.3))
    for step in range(30, 60):  # 30 % over the other: under the margin, over half of it
        watch = stragglers.observe(watch, 0, report(step, (0.1, 0.13)), POLICY, named)
    assert slow_ranks(watch, 59, (0.1, 0.13)) == [1]
    unnamed = watch_through(range(0, 60), (0.1, 0.13))
    assert slow_ranks(unnamed, 59, (0.1, 0.13)) == []


def test_a_new_attempt_or_group_size_starts_the_watch_afresh() -> None:
    watch = watch_through(range(0, 30), (0.05, 0.2))
    assert stragglers.observe(watch, 1, report(30, (0.05, 0.2)), POLICY) == stragglers.SlowWatch(
        1, 2, {1: 30}
    )
    grown = stragglers.observe(watch, 0, report(31, (0.05, 0.2, 0.05), world=3), POLICY)
    assert grown is not None and grown.slow_since == {1: 31}


def test_a_disabled_policy_watches_nothing() -> None:
    off = StragglerDetection(enabled=False)
    assert stragglers.observe(None, 0, report(5, (0.05, 0.2)), off) is None


def children_on_nodes() -> list[Obj]:
    """A settled job's children, each worker named as WORKERS says (as the trainers report
    it: tests.unit.operator.workers) and bound to node-<its index>."""
    _, children = settled()
    for child in children:
        if pods.is_worker(child):
            index = pods.index_of(child)
            child["metadata"].update(name=WORKERS[index], uid=f"uid-{WORKERS[index]}")
            child["spec"]["nodeName"] = f"node-{index}"
    return children


def test_a_named_straggler_is_written_once_with_its_pod_uid_and_node() -> None:
    slow = [RankFigures(1, WORKERS[1], data=0.01, compute=0.19, communication=0.0)]
    first = stragglers.plan_reports([], slow, report(120, (0.05, 0.2)), children_on_nodes(), NOW)
    assert [(s.pod, s.pod_uid, s.node, s.rank) for s in first] == [
        (WORKERS[1], f"uid-{WORKERS[1]}", "node-1", 1)
    ]
    assert first[0].slower_by_percent == 300  # against the other worker's 0.05 s
    later = stragglers.plan_reports(first, slow, report(150, (0.05, 0.3)), children_on_nodes(), NOW)
    assert later == first  # as first named: a steady straggler writes nothing more
    assert stragglers.newly_named(first, later) == []


def test_the_trainers_document_parses_to_the_figures_judged() -> None:
    doc = {
        "step": 7,
        "workers": {
            "window_steps": 20,
            "median_work_seconds": 0.1,
            "ranks": [
                {
                    "rank": 0,
                    "pod": "p0",
                    "data_seconds": 0.01,
                    "compute_seconds": 0.09,
                    "communication_seconds": 0.2,
                },
                {"rank": "1", "pod": "p1"},  # not the trainer's: left out
            ],
        },
    }
    parsed = parse_progress(doc)
    assert parsed is not None and parsed.workers is not None
    assert parsed.workers.ranks == (RankFigures(0, "p0", 0.01, 0.09, 0.2),)
    assert parsed.workers.ranks[0].work == pytest.approx(0.1)
    assert stragglers.spread(parsed) == pytest.approx(1.0)


def figures_doc(step: int, works: tuple[float, float]) -> Obj:
    ranks = [
        {
            "rank": r,
            "pod": WORKERS[r],
            "data_seconds": 0.0,
            "compute_seconds": w,
            "communication_seconds": 0.0,
        }
        for r, w in enumerate(works)
    ]
    median = sum(works) / 2
    doc = {"window_steps": 20, "median_work_seconds": median, "ranks": ranks}
    return {"step": step, "state": "Training", "world_size": 2, "workers": doc}


def test_the_poller_names_a_straggler_once_then_clears_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job, _ = settled({"failurePolicy": {"stragglerDetection": {"steps": 20}}})
    api = PatchRecorder()
    poller, key = poller_knowing(job, children_on_nodes(), api)

    def poll(step: int, works: tuple[float, float]) -> None:
        monkeypatch.setattr(poller_module, "fetch_progress", lambda ip: figures_doc(step, works))
        asyncio.run(poller._poll(key, parse(poller.cache.job(key) or {}), poller.interval))
        for patch in api.patches:  # the cache sees what was written, as the watch would
            if "stragglers" in patch:
                job["status"]["stragglers"] = patch["stragglers"]
        poller.cache.put_job(copy.deepcopy(job))

    for step in range(100, 125, 5):
        poll(step, (0.05, 0.3))
    named = [p["stragglers"] for p in api.patches if "stragglers" in p]
    assert len(named) == 1 and named[0][0]["pod"] == WORKERS[1]
    assert named[0][0]["node"] == "node-1"
    assert [(kind, reason) for kind, reason, _ in api.events] == [("Warning", "Straggler")]
    assert "node-1" in api.events[0][2] and "500% slower" in api.events[0][2]
    poll(130, (0.05, 0.05))
    assert [p["stragglers"] for p in api.patches if "stragglers" in p][-1] == []


def status_with(named: list[StragglerReport] | None) -> JobStatus:
    job = parse(make_job())
    job.status = JobStatus(stragglers=named)
    return compute_status(job, [], NOW)


def test_the_straggler_condition_follows_status_stragglers() -> None:
    named = StragglerReport(
        pod="digits-worker-1-a0",
        rank=1,
        node="node-1",
        slower_by_percent=80,
        work_seconds=0.18,
        median_work_seconds=0.1,
        step=120,
        since=NOW,
    )
    conditions = {c.type: c for c in status_with([named]).conditions or []}
    assert conditions["Straggler"].status == "True"
    assert conditions["Straggler"].reason == "SlowWorker"
    assert "digits-worker-1-a0 (rank 1 on node node-1) is 80% slower" in str(
        conditions["Straggler"].message
    )
    cleared = {c.type: c for c in status_with([]).conditions or []}
    assert (cleared["Straggler"].status, cleared["Straggler"].reason) == ("False", "NoSlowWorker")
    assert "Straggler" not in {c.type for c in status_with(None).conditions or []}


def test_avoided_nodes_are_kept_out_of_every_node_affinity_term() -> None:
    own = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a"]}]},
            {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["b"]}]},
        ]
    }
    manifest = make_job()
    manifest["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": own}
    }
    manifest["status"] = {"avoidedNodes": ["node-2", "node-1"]}
    pod = builders.build_worker_pod(parse(manifest), 0, 0)
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    avoid = {"key": "metadata.name", "operator": "NotIn", "values": ["node-1", "node-2"]}
    assert [t["matchFields"] for t in terms] == [[avoid], [avoid]]
    assert "affinity" not in builders.build_worker_pod(parse(make_job()), 0, 0)["spec"]


def named_straggler_job(action: str) -> tuple[Obj, list[Obj]]:
    job, _ = settled({"failurePolicy": {"stragglerDetection": {"action": action}}})
    children = children_on_nodes()
    job["status"]["stragglers"] = [
        {
            "pod": WORKERS[1],
            "podUID": f"uid-{WORKERS[1]}",
            "rank": 1,
            "node": "node-1",
            "slowerByPercent": 80,
            "workSeconds": 0.18,
            "medianWorkSeconds": 0.1,
            "step": 120,
            "since": "2026-05-06T07:08:09Z",
        }
    ]
    return job, children


def test_replace_pod_deletes_the_straggler_once_and_avoids_its_node() -> None:
    job, children = named_straggler_job("ReplacePod")
    plan = plan_reconcile(job, children, NOW)
    assert plan.delete_pods == [WORKERS[1]]
    assert plan.status_patch is not None
    assert plan.status_patch["avoidedNodes"] == ["node-1"]
    assert plan.status_patch["stragglers"][0]["replaced"] is True
    assert [e.reason for e in plan.events] == ["StragglerReplaced"]
    # Its slot freed, the replacement is made off its node, under a name of its own.
    job = apply(job, plan)
    job["status"]["stragglers"][0]["replaced"] = None  # as a stale write of the poller might
    kept = [c for c in children if c["metadata"]["name"] != WORKERS[1]]
    created = plan_reconcile(job, kept, NOW)
    (worker,) = [p for p in created.create if pods.is_worker(p)]
    assert pods.index_of(worker) == 1 and worker["metadata"]["name"] != WORKERS[1]
    # The replacement is another pod: whatever status says, it stays.
    replacement = {**worker, "metadata": {**worker["metadata"], "uid": "uid-replacement"}}
    again = plan_reconcile(job, [*kept, running(replacement)], NOW)
    assert again.delete_pods == []
    terms = worker["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]}
    ]


def test_report_only_names_and_never_deletes() -> None:
    job, children = named_straggler_job("Report")
    plan = plan_reconcile(job, children, NOW)
    assert plan.delete_pods == []
    assert "avoidedNodes" not in (plan.status_patch or {})
