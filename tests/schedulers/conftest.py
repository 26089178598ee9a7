"""Fixtures of the tests with the real queue and gang schedulers: each starts the scheduler it
needs in the test session's cluster (built first, once: tools/build-addons.sh) and removes it
after. Run by `make schedulers-test`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import pool
from tests.kube import Kube
from tools.localcluster import schedulers
from tools.localcluster.cluster import LocalCluster

__all__ = ["pool"]  # the integration tests' fixture: fake GPU nodes of a test's own


# What each optional scheduler serves: a test against a cluster of one's own needs it there.
SCHEDULER_APIS = {
    schedulers.KUEUE: "kueue.x-k8s.io",
    schedulers.VOLCANO: "scheduling.volcano.sh",
    schedulers.COSCHEDULING: "scheduling.x-k8s.io",
}


def _run_scheduler(local_cluster: LocalCluster | None, kube: Kube, name: str) -> Iterator[str]:
    """Start one optional scheduler in the test cluster; stop it and remove its CRDs after."""
    if local_cluster is None:
        group = SCHEDULER_APIS[name]
        if group not in kube.run("api-versions"):
            pytest.skip(f"the cluster in use does not serve {group}: {name} is not installed")
        yield name
        return
    local_cluster.start_schedulers([name])
    try:
        yield name
    finally:
        local_cluster.stop_schedulers((name,), remove_crds=True)


@pytest.fixture(scope="module")
def volcano(local_cluster: LocalCluster | None, kube: Kube) -> Iterator[str]:
    """Volcano's scheduler and controllers, for the tests of one module; yields its name."""
    yield from _run_scheduler(local_cluster, kube, schedulers.VOLCANO)


@pytest.fixture(scope="module")
def coscheduling(local_cluster: LocalCluster | None, kube: Kube) -> Iterator[str]:
    """scheduler-plugins' coscheduling scheduler for the tests of one module."""
    yield from _run_scheduler(local_cluster, kube, schedulers.COSCHEDULING)


@pytest.fixture(scope="module")
def kueue(local_cluster: LocalCluster | None, kube: Kube) -> Iterator[str]:
    """Kueue (its webhooks included) for the tests of one module."""
    yield from _run_scheduler(local_cluster, kube, schedulers.KUEUE)
