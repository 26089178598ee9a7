"""What a worker pod asks the scheduler for, and a gang's PodGroup minResources."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ringleader import builders
from ringleader.podresources import format_quantity, gang_requests, pod_requests
from tests.unit.operator.jobs import TRAINER, make_job, parse, with_container


def container(name: str, requests: dict[str, str] | None = None, **more: Any) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": requests or {}}, **more}


def test_a_pod_asks_for_the_sum_of_its_containers_with_limits_standing_in_for_requests() -> None:
    spec = {
        "containers": [
            container("trainer", {"cpu": "4", "memory": "16Gi"}),
            {"name": "gpu", "resources": {"limits": {"nvidia.com/gpu": "8", "cpu": "9"}}},
            container("logs", {"cpu": "250m"}),
        ]
    }
    asked = pod_requests(spec)
    # The gpu container's cpu limit is its request (it sets none): 4 + 9 + 0.25.
    assert asked == {
        "cpu": Decimal("13.25"),
        "memory": Decimal(16 * 2**30),
        "nvidia.com/gpu": Decimal(8),
    }


def test_init_containers_count_only_as_a_peak_and_sidecars_beside_everything() -> None:
    spec = {
        "initContainers": [
            container("fetch", {"cpu": "6"}),
            container("proxy", {"cpu": "1"}, restartPolicy="Always"),
            container("warm", {"cpu": "3", "memory": "1Gi"}),
        ],
        "containers": [container("trainer", {"cpu": "2", "memory": "4Gi"})],
        "overhead": {"cpu": "100m"},
    }
    # Running: trainer 2 + sidecar 1 = 3 cpu; the init peak is fetch's 6 (warm: 3 + 1 = 4).
    # Memory: running 4Gi beats warm's 1Gi. Then the RuntimeClass overhead on top.
    assert pod_requests(spec) == {"cpu": Decimal("6.1"), "memory": Decimal(4 * 2**30)}


def test_pod_level_resources_replace_the_containers_sums_of_what_they_name() -> None:
    spec = {
        "resources": {"limits": {"cpu": "8"}, "requests": {"memory": "32Gi"}},
        "containers": [container("trainer", {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"})],
    }
    assert pod_requests(spec) == {
        "cpu": Decimal(8),
        "memory": Decimal(32 * 2**30),
        "nvidia.com/gpu": Decimal(1),
    }


@pytest.mark.parametrize(
    ("amount", "text"),
    [("3", "3"), ("1.5", "1500m"), ("0.0001", "1m"), (str(2**35), str(2**35))],
)
def test_quantities_are_written_in_whole_units_or_thousandths_rounded_up(
    amount: str, text: str
) -> None:
    assert format_quantity(Decimal(amount)) == text


def test_a_gang_asks_for_its_members_together_and_nothing_for_a_bad_quantity() -> None:
    spec = {"containers": [container("trainer", {"cpu": "500m", "nvidia.com/gpu": "1"})]}
    assert gang_requests(spec, 3) == {"cpu": "1500m", "nvidia.com/gpu": "3"}
    assert gang_requests({"containers": [container("trainer", {"cpu": "lots"})]}, 3) == {}
    assert gang_requests({"containers": [container("trainer")]}, 3) == {}


def test_the_pod_group_asks_for_what_its_fewest_workers_request() -> None:
    job = with_container(
        make_job(
            {
                "replicas": 4,
                "elastic": {"minReplicas": 2, "maxReplicas": 6},
                "scheduling": {"gang": True},
            }
        ),
        resources={"limits": {"nvidia.com/gpu": "8"}, "requests": {"cpu": "30", "memory": "200Gi"}},
    )
    group = builders.build_pod_group(parse(job))
    assert group is not None
    assert group["spec"] == {
        "minMember": 2,
        "minResources": {"cpu": "60", "memory": str(400 * 2**30), "nvidia.com/gpu": "16"},
    }


def test_a_gang_of_workers_that_request_nothing_has_no_min_resources() -> None:
    job = make_job({"scheduling": {"gang": True}})
    assert job["spec"]["template"]["spec"]["containers"] == [TRAINER]
    group = builders.build_pod_group(parse(job))
    assert group is not None and "minResources" not in group["spec"]
