"""Session-wide fixtures: one local cluster per test session, a fresh namespace per test.

With RINGLEADER_USE_EXISTING_CLUSTER=1 the tests use the cluster $KUBECONFIG points at instead
of starting their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import InstalledOperator, LocalNodes, OperatorProcess
from tests.kube import Kube, wait_until
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import Layout, cached_bin_dir
from tools.realnodes.naming import local_node_names

REPO_ROOT = Path(__file__).resolve().parents[1]
# The test cluster's ports sit apart from the developer's (16400). Another block (e.g. 19400)
# lets a second test session run beside the first, real nodes included: their interfaces,
# addresses and cgroups are named after the block (tools/realnodes/naming.py).
TEST_PORT_BASE = int(os.environ.get("RINGLEADER_TEST_PORT_BASE", "17400"))
TEST_CLUSTER_DIR = ".cluster-test" if TEST_PORT_BASE == 17400 else f".cluster-test-{TEST_PORT_BASE}"


def use_existing_cluster() -> bool:
    """True when the tests run against $KUBECONFIG's cluster instead of starting their own."""
    return os.environ.get("RINGLEADER_USE_EXISTING_CLUSTER") == "1"


def session_layout() -> Layout:
    """The test session's own cluster: its state directory, binaries and ports."""
    return Layout(REPO_ROOT / TEST_CLUSTER_DIR, cached_bin_dir(), TEST_PORT_BASE)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster | None]:
    """The test session's own cluster, started here; None when the tests use an existing one."""
    if use_existing_cluster():
        yield None
        return
    layout = session_layout()
    cluster = LocalCluster(layout)
    cluster.destroy()  # leftovers of an interrupted session
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def kube(local_cluster: LocalCluster | None) -> Kube:
    """A kubectl wrapper bound to the test session's cluster."""
    if local_cluster is not None:
        return Kube(local_cluster.layout.kubeconfig)
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.fail("RINGLEADER_USE_EXISTING_CLUSTER=1 needs KUBECONFIG")
    return Kube(Path(kubeconfig))


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A namespace of its own for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.run("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


CRD_NAME = "distributedtrainingjobs.ringleader.dev"


@pytest.fixture(scope="session")
def crd(kube: Kube) -> str:
    """The DistributedTrainingJob CRD, installed and established."""
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"))

    def established() -> bool:
        conditions = kube.get("crd", CRD_NAME).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_until(established, what=f"{CRD_NAME} established")
    return CRD_NAME


@pytest.fixture(scope="session")
def operator(
    kube: Kube,
    crd: str,
    local_cluster: LocalCluster | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """One operator for the session, serving the admission webhook as the chart's does (on the
    session's own cluster); a test may kill and restart it."""
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    webhook = local_cluster.register_operator_webhook() if local_cluster is not None else ()
    process = OperatorProcess(kube.kubeconfig, log_path, always_args=webhook)
    process.start()
    yield process
    process.stop()


LOCAL_NODE_COUNT = 2


@pytest.fixture(scope="session")
def local_nodes(kube: Kube) -> Iterator[LocalNodes]:
    """Two real nodes (local-0, local-1: kubelet, containerd) in the session's cluster."""
    if os.geteuid() != 0:
        pytest.skip("real nodes need root (mount namespaces, cgroups, network interfaces)")
    if use_existing_cluster():
        pytest.skip("real nodes join only the cluster the tests start themselves")
    cluster = LocalCluster(session_layout(), provisioner=False)
    try:
        cluster.start_local_nodes(LOCAL_NODE_COUNT)
        yield LocalNodes(local_node_names(LOCAL_NODE_COUNT), cluster)
    finally:
        cluster.stop_real_nodes()


@pytest.fixture(scope="session")
def installed_operator(kube: Kube, local_nodes: LocalNodes) -> InstalledOperator:
    """The operator as users install it: `helm install` of charts/ringleader with the image
    operator/Dockerfile builds, in the cluster, on its system node (real nodes only). A session
    that uses it must not also run the `operator` process: both would reconcile every job."""
    return InstalledOperator(kube, local_nodes.cluster.install_operator())
