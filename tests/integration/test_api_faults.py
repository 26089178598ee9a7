"""API faults between the operator and the API server: a proxy answers some requests 429, 500
or 409, slows others, cuts watch streams; etcd and the API server are restarted mid-run. Jobs
fail, resize and start meanwhile. Once the faults stop, the operator has converged by itself:
every job in its phase with exactly its children, each restart counted once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import session_layout, use_existing_cluster
from tests.harness import OperatorProcess
from tests.integration.test_operator import job_status, make_job, wait_for_phase
from tests.integration.test_recovery import fail_worker
from tests.kube import Kube, is_live, known_as, wait_until, worker_name
from tools.faultproxy.cluster import proxy_in_front
from tools.faultproxy.faults import Faults, Kind
from tools.faultproxy.proxy import FaultProxy
from tools.localcluster.cluster import CONTROL_PLANE, LocalCluster

PROXY_PORT_OFFSET = 61  # in the test cluster's port block, beside its components
STORMY = Faults(
    throttled=0.05,
    server_error=0.05,
    conflict=0.10,
    slow=0.10,
    slow_seconds=0.3,
    watch_cut_after=8.0,
)


@pytest.fixture
def proxied(
    kube: Kube, operator: OperatorProcess, tmp_path: Path
) -> Iterator[tuple[FaultProxy, OperatorProcess]]:
    """The fault proxy in front of the API server, and an operator that talks through it."""
    if use_existing_cluster():
        pytest.skip("needs the test session's own cluster (its PKI and components)")
    layout = session_layout()
    kubeconfig = tmp_path / "proxied.kubeconfig"
    proxy = proxy_in_front(layout, layout.port_base + PROXY_PORT_OFFSET, 11, kubeconfig)
    operator.stop()
    through = OperatorProcess(kubeconfig, tmp_path / "operator.log")
    through.start()
    try:
        yield proxy, through
    finally:
        through.stop()
        proxy.stop()
        operator.start()


def test_the_operator_converges_after_api_faults_and_restarts_of_etcd_and_the_api_server(
    kube: Kube, proxied: tuple[FaultProxy, OperatorProcess], namespace: str
) -> None:
    proxy, _ = proxied
    proxy.faults = STORMY
    kube.apply(make_job("steady", gpus=0), namespace)
    kube.apply(make_job("failing", gpus=0), namespace)
    elastic = {"minReplicas": 1, "maxReplicas": 4}
    kube.apply(make_job("growing", gpus=0, elastic=elastic), namespace)
    for name in ("steady", "failing", "growing"):
        wait_for_phase(kube, namespace, "Running", name=name, timeout=180)
    fail_worker(kube, namespace, worker_name(kube, namespace, "failing", 1), 137, "OOMKilled")
    kube.run("scale", "dtj", "growing", "--replicas=3", "-n", namespace)
    # The controller manager and the scheduler restart with them, as in an upgrade of the
    # control plane. Left running, the controller manager would count the nodes' leases as
    # lapsed while the API server was away and mark every pod NotReady, which kwok's fake
    # kubelets never undo as a real kubelet would; and the scheduler, its binding of a pod lost
    # in the restart, finds the pod bound elsewhere and exits ("Scheduler cache is corrupted",
    # by design: a kubelet restarts it, and nothing restarts it here).
    LocalCluster(session_layout()).restart(*CONTROL_PLANE)
    time.sleep(20)  # the storm goes on over the restarted API server
    proxy.faults = Faults.none()

    def converged() -> tuple[list[str], dict[str, object]] | None:
        pods = kube.get("pods", namespace=namespace)["items"]
        live = sorted(known_as(p) for p in pods if is_live(p))  # a worker by its slot
        expected = sorted(
            [f"{j}-rdzv" for j in ("steady", "failing", "growing")]
            + [f"steady-worker-{i}-a0" for i in range(2)]
            + [f"failing-worker-{i}-a0" for i in range(2)]
            + [f"growing-worker-{i}-a0" for i in range(3)]
        )
        phases = {
            j: job_status(kube, namespace, j).get("phase") for j in ("steady", "failing", "growing")
        }
        seen.append((live, phases))
        return (live, phases) if live == expected and set(phases.values()) == {"Running"} else None

    seen: list[tuple[list[str], dict[str, object]]] = []
    try:
        wait_until(converged, timeout=180, what="every job Running with exactly its pods")
    except AssertionError as error:
        proxied[1].dump_stacks()  # where it waits, into its log
        raise AssertionError(f"{error}; last seen pods and phases: {seen[-1:]}") from error
    failing = job_status(kube, namespace, "failing")
    assert (failing["restarts"], failing["restartsByClass"]) == (1, {"OutOfMemory": 1})
    for name in ("steady", "growing"):
        status = job_status(kube, namespace, name)
        assert (status.get("restarts", 0), status["restartAttempt"]) == (0, 0)
    assert job_status(kube, namespace, "growing")["workers"] == "3/3"
    for kind in Kind:
        assert proxy.injected[kind] > 0, dict(proxy.injected)
