"""Two clusters with real nodes share a host, and `down` of one leaves nothing of it behind."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TEST_PORT_BASE, session_layout
from tests.harness import LocalNodes
from tests.kube import Kube
from tests.realnodes.conftest import SLEEP, pod, wait_ready
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import Layout
from tools.realnodes import cgroups, hostnet, mounts
from tools.realnodes.naming import ClusterNaming

OTHER_PORT_BASE = TEST_PORT_BASE + 100


def _traces(root: Path, naming: ClusterNaming) -> dict[str, list[str]]:
    """What of the cluster kept in root the host still shows: processes, mounts, links, ..."""
    processes = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(root).encode() in (entry / "cmdline").read_bytes():
                processes.append(entry.name)
        except OSError:
            continue
    own = f"rn{naming.tag}-*"
    cgroup_roots = [
        str(path) for hierarchy in cgroups.hierarchies() for path in hierarchy.glob(own)
    ]
    iptables = shutil.which("iptables-save")
    rules = ""
    if iptables:
        rules = subprocess.run([iptables], capture_output=True, text=True, check=False).stdout
    marks = (f"rn{naming.tag}-", str(naming.network))
    routing = hostnet.run_ip("rule", "show") + hostnet.run_ip("netns", "list")
    return {
        "processes": processes,
        "mounts": mounts.mounts_under(root),
        "links": hostnet.cluster_links(naming, hostnet.link_names()),
        "cgroups": cgroup_roots,
        "iptables": [line for line in rules.splitlines() if any(m in line for m in marks)],
        "routing": [line for line in routing.splitlines() if any(m in line for m in marks)],
    }


@pytest.fixture
def other_cluster(local_nodes: LocalNodes) -> Iterator[LocalCluster]:
    """A second cluster with one real node, beside the session's (destroyed by the test)."""
    root = REPO_ROOT / f".cluster-test-{OTHER_PORT_BASE}"
    layout = Layout(root, session_layout().bin_dir, OTHER_PORT_BASE)
    cluster = LocalCluster(layout, provisioner=False)
    cluster.destroy()
    try:
        cluster.up()
        cluster.start_local_nodes(1)
        yield cluster
    finally:
        cluster.destroy()


def test_a_second_cluster_runs_beside_the_first_and_its_down_leaves_nothing_behind(
    kube: Kube,
    namespace: str,
    local_nodes: LocalNodes,
    base_image: str,
    other_cluster: LocalCluster,
) -> None:
    other = Kube(other_cluster.layout.kubeconfig)
    other_cluster.import_images(["base"])
    other.run("create", "namespace", "side")
    other.apply(pod("beside", base_image, SLEEP), "side")
    kube.apply(
        pod("first", base_image, SLEEP, nodeSelector={"kubernetes.io/hostname": "local-1"}),
        namespace,
    )
    wait_ready(other, "side", "beside")
    wait_ready(kube, namespace, "first")
    naming = ClusterNaming(OTHER_PORT_BASE)
    running = _traces(other_cluster.layout.root, naming)
    assert all(running[key] for key in ("processes", "mounts", "links", "cgroups", "routing"))

    other_cluster.down()

    assert _traces(other_cluster.layout.root, naming) == {
        "processes": [], "mounts": [], "links": [], "cgroups": [], "iptables": [], "routing": [],
    }  # fmt: skip
    # The first cluster's nodes did not notice: a new pod there starts and resolves names.
    kube.apply(pod("after", base_image, SLEEP), namespace)
    wait_ready(kube, namespace, "after")
    lookup = "import socket; socket.gethostbyname('kubernetes.default.svc.cluster.local')"
    kube.run("exec", "-n", namespace, "after", "--", "python3", "-c", lookup)
    assert kube.get("pod", "first", namespace)["status"]["phase"] == "Running"
