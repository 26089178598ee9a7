"""A lost node on real nodes: its kubelet and containerd stop and its containers die with them;
started again, it registers (again, if its Node was deleted) and runs pods."""

from __future__ import annotations

import os
from pathlib import Path

from tests.harness import LocalNodes, node_ready
from tests.kube import Kube, wait_until
from tests.realnodes.conftest import SLEEP, pod, wait_ready


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _host_pid(namespace: str, name: str) -> int:
    """The host's pid of the pod's main process (its environment names the pod)."""
    marker = f"POD_NAME={namespace}/{name}".encode() + b"\0"
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no process of {namespace}/{name} on this host")


def test_a_lost_node_kills_its_containers_and_registers_again_when_started(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    lost = local_nodes.names[1]
    env = {"env": [{"name": "POD_NAME", "value": f"{namespace}/victim"}]}
    kube.apply(pod("victim", base_image, SLEEP, nodeName=lost, container=env), namespace)
    wait_ready(kube, namespace, "victim")
    pid = _host_pid(namespace, "victim")

    local_nodes.lose(lost, delete=True)

    assert not _alive(pid)  # killed with the node, no grace period
    assert not node_ready(kube, lost)
    local_nodes.restore(lost)
    wait_until(lambda: node_ready(kube, lost), timeout=60, what=f"{lost} Ready again")
    kube.apply(pod("after", base_image, SLEEP, nodeName=lost), namespace)
    wait_ready(kube, namespace, "after")
