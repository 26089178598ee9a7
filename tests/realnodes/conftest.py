"""Real nodes for the session's cluster: two kubelets with their own containerd, and images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import session_layout, use_existing_cluster
from tests.harness import InstalledOperator
from tests.kube import Kube, wait_until
from tools.localcluster.cluster import NODE_KUBELET, LocalCluster
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL, local_node_names

NODE_COUNT = 2


@dataclass(frozen=True)
class RealNodes:
    """The session's real nodes: their names, and the cluster that runs them."""

    names: list[str]
    cluster: LocalCluster

    def image(self, name: str, on: list[str] | None = None) -> str:
        """The reference of a locally built image, imported into the nodes (or those in on)."""
        [image] = self.cluster.import_images([name], on)
        return image.ref


@pytest.fixture(scope="session")
def real_nodes(kube: Kube) -> Iterator[RealNodes]:
    """Two real nodes (local-0, local-1) in the session's cluster, stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("real nodes need root (mount namespaces, cgroups, network interfaces)")
    if use_existing_cluster():
        pytest.skip("real nodes join only the cluster the tests start themselves")
    cluster = LocalCluster(session_layout(), provisioner=False, node_kind=NODE_KUBELET)
    try:
        cluster.start_local_nodes(NODE_COUNT)
        yield RealNodes(local_node_names(NODE_COUNT), cluster)
    finally:
        cluster.stop_real_nodes()


@pytest.fixture(scope="session")
def operator(kube: Kube, real_nodes: RealNodes) -> InstalledOperator:
    """The operator as users install it: `helm install` of charts/ringleader with the image
    operator/Dockerfile builds, in the cluster, on its system node (real-node tests only)."""
    image = real_nodes.cluster.install_operator()
    return InstalledOperator(kube, image)


@pytest.fixture(scope="session")
def base_image(real_nodes: RealNodes) -> str:
    """Debian 12 with Python, on every real node."""
    return real_nodes.image("base")


SLEEP = ["python3", "-c", "import time; time.sleep(3600)"]


def pod(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    """A pod of one container `main` on a real node (not kwok's), never pulling its image."""
    container = {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {
            "nodeSelector": {NODE_POOL_LABEL: LOCAL_POOL},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            **spec,
        },
    }


def wait_ready(kube: Kube, namespace: str, *names: str, timeout: float = 60) -> None:
    """Until every named pod is Ready."""
    pods = [f"pod/{name}" for name in names]
    kube.run("wait", "-n", namespace, "--for=condition=Ready", *pods, f"--timeout={timeout}s")


def terminated(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    """The main container's terminated state, once it has one."""

    def state() -> dict[str, Any] | None:
        statuses = kube.get("pod", name, namespace).get("status", {}).get("containerStatuses")
        found: dict[str, Any] | None = (statuses or [{}])[0].get("state", {}).get("terminated")
        return found

    return wait_until(state, timeout=90, what=f"{name} terminated")
