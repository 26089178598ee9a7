"""Fixtures of the integration tests beyond the session-wide ones in tests/conftest.py."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest

from tests.kube import Kube
from tools.localcluster import schedulers
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.nodes import NODE_POOL_LABEL, build_fake_gpu_node

POOL_SIZE = 4  # two workers, their replacements, and room for a preemptor


@pytest.fixture
def pool(kube: Kube, namespace: str) -> Iterator[str]:
    """POOL_SIZE fake GPU nodes for this test only (pool label and taint: the namespace)."""
    subnet = zlib.crc32(namespace.encode()) % 250
    names = [f"{namespace}-gpu-{index}" for index in range(POOL_SIZE)]
    nodes = []
    for index, name in enumerate(names):
        node = build_fake_gpu_node(name, f"10.241.{subnet}.{10 + index}")
        node["metadata"]["labels"][NODE_POOL_LABEL] = namespace
        node["spec"] = {
            "taints": [{"key": NODE_POOL_LABEL, "value": namespace, "effect": "NoSchedule"}]
        }
        nodes.append(node)
    kube.apply(nodes, namespace)
    try:
        selector = f"{NODE_POOL_LABEL}={namespace}"
        kube.run("wait", "--for=condition=Ready", "node", "-l", selector, "--timeout=60s")
        yield namespace
    finally:
        kube.run("delete", "node", *names, "--wait=false", check=False)


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
