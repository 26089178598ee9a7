"""Pre-flight: a group's network measurement judged against the job's margin (a slow worker,
a slow link, or every link as expected), asked for through the env, shown in status."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ringleader import poller as poller_module
from ringleader import preflight, workerenv
from ringleader.reports import LinkReport, PreflightReport, parse_progress
from ringleader.status import compute_status
from ringleader.statusmodels import JobStatus
from tests.unit.operator.jobs import make_job, parse
from tests.unit.operator.test_poller_hang import PatchRecorder, poller_knowing
from tests.unit.operator.test_reconcile_plan import NOW
from tests.unit.operator.test_reconcile_recovery import settled

Obj = dict[str, Any]


def ring(gbps: list[float], pods: list[str]) -> PreflightReport:
    """A measurement of a ring: gbps[i] is what rank i received from rank i-1."""
    n = len(gbps)
    links = tuple(
        LinkReport(pods[(i - 1) % n], pods[i], (i - 1) % n, i, value)
        for i, value in enumerate(gbps)
    )
    across = sorted(link.gbps for link in links if not link.in_pod)
    in_pod = sorted(link.gbps for link in links if link.in_pod)
    return PreflightReport(
        megabytes=64,
        bus_gbps=1.5,
        median_in_pod_gbps=in_pod[len(in_pod) // 2] if in_pod else None,
        median_across_pods_gbps=across[len(across) // 2] if across else None,
        links=links,
        measured_at=1_800_000_000.0,
    )


PODS = ["w-0", "w-1", "w-2", "w-3"]


def test_a_worker_both_of_whose_links_are_slow_is_named() -> None:
    result = preflight.judge(ring([2.0, 2.0, 0.2, 0.3], PODS), 4, 50)
    # w-2 received slowly from w-1 and w-3 from w-2: the slow one sent and received both.
    assert not result.passed
    assert result.slow_pods == ["w-2"]
    assert result.slow_links == ["w-1 -> w-2: 0.2 GB/s", "w-2 -> w-3: 0.3 GB/s"]
    assert preflight.reason(result) == "SlowWorkerNetwork"
    assert "slow network on w-2" in result.message


def test_a_single_slow_link_is_named_as_a_link() -> None:
    result = preflight.judge(ring([2.0, 0.4, 2.0, 2.0], PODS), 4, 50)
    assert (result.passed, result.slow_pods) == (False, None)
    assert result.slow_links == ["w-0 -> w-1: 0.4 GB/s"]
    assert preflight.reason(result) == "SlowLink"


def test_links_inside_a_pod_are_not_measured_against_links_between_pods() -> None:
    # Two pods of two ranks: the links inside a pod are ten times faster, and that is no fault.
    pods = ["a", "a", "b", "b"]
    result = preflight.judge(ring([1.0, 10.0, 1.1, 9.0], pods), 4, 50)
    assert result.passed and result.slow_links is None
    assert result.median_link_gbps == 1.1  # between pods, where the network is
    assert preflight.reason(result) == "NetworkAsExpected"


def test_in_a_ring_of_two_no_end_is_blamed() -> None:
    result = preflight.judge(ring([2.0, 0.1], ["w-0", "w-1"]), 2, 50)
    assert not result.passed and result.slow_pods is None


def test_the_contract_env_asks_for_a_preflight_only_when_the_job_does() -> None:
    def names(spec: Obj | None) -> dict[str, Any]:
        env = workerenv.build_contract_env(parse(make_job(spec)), 0, 0)
        return {e["name"]: e.get("value") for e in env}

    assert "RINGLEADER_PREFLIGHT_MEGABYTES" not in names(None)
    asked = names({"networking": {"preflight": {"megabytes": 8}}})
    assert asked["RINGLEADER_PREFLIGHT_MEGABYTES"] == "8"
    defaults = names({"networking": {"preflight": {}}})
    assert defaults["RINGLEADER_PREFLIGHT_MEGABYTES"] == "64"


def progress_with_preflight(measured_at: float) -> Obj:
    links = [
        {"from": "w-1", "to": "w-0", "from_rank": 1, "to_rank": 0, "gbps": 2.0},
        {"from": "w-0", "to": "w-1", "from_rank": 0, "to_rank": 1, "gbps": 1.8},
    ]
    found = {
        "megabytes": 64,
        "bus_gbps": 1.2,
        "median_in_pod_gbps": None,
        "median_across_pods_gbps": 1.9,
        "links": links,
        "measured_at": measured_at,
    }
    return {"step": 3, "state": "Training", "world_size": 2, "preflight": found}


def test_the_poller_writes_each_measurement_once_with_an_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job, children = settled({"networking": {"preflight": {}}})
    api = PatchRecorder()
    poller, key = poller_knowing(job, children, api)

    def poll(measured_at: float) -> None:
        answer = progress_with_preflight(measured_at)
        monkeypatch.setattr(poller_module, "fetch_progress", lambda ip: answer)
        asyncio.run(poller._poll(key, parse(poller.cache.job(key) or {}), poller.interval))
        for patch in api.patches:  # what the watch would bring back
            job["status"].update({k: v for k, v in patch.items() if k == "preflight"})
        poller.cache.put_job(job)

    poll(1_800_000_000.0)
    poll(1_800_000_000.0)  # the same measurement, reported again
    written = [p["preflight"] for p in api.patches if "preflight" in p]
    assert len(written) == 1 and written[0]["passed"] is True
    assert written[0]["busBandwidthGbps"] == 1.2 and written[0]["worldSize"] == 2
    assert [(kind, reason) for kind, reason, _ in api.events] == [("Normal", "NetworkAsExpected")]
    poll(1_800_000_100.0)  # a group that re-formed measured again
    assert len([p for p in api.patches if "preflight" in p]) == 2


def test_the_preflight_condition_follows_status() -> None:
    report = parse_progress(progress_with_preflight(1_800_000_000.0))
    assert report is not None and report.preflight is not None
    result = preflight.judge(report.preflight, 2, 50)
    job = parse(make_job())
    job.status = JobStatus(preflight=result)
    conditions = {c.type: c for c in compute_status(job, [], NOW).conditions or []}
    assert conditions["PreflightPassed"].status == "True"
    assert conditions["PreflightPassed"].reason == "NetworkAsExpected"
    assert conditions["PreflightPassed"].last_transition_time == result.measured_at
