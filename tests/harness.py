"""What the tests run beside the cluster: the operator (a process, or installed by the chart),
and the real local nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.kube import Kube
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE
from tools.localcluster.operatorchart import RELEASE as OPERATOR_RELEASE
from tools.realnodes.nodeset import open_real_nodes

REPO_ROOT = Path(__file__).resolve().parents[1]


class OperatorProcess:
    """The operator as users run it (`python -m ringleader`), as a child process of the tests."""

    def __init__(self, kubeconfig: Path, log_path: Path, always_args: tuple[str, ...] = ()) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.always_args = always_args  # given at every start, e.g. those serving the webhook
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, exit_after_writes: int | None = None, args: tuple[str, ...] = ()) -> None:
        """Start it (again), appending to the same log; optionally dying after N writes."""
        argv = [sys.executable, "-m", "ringleader", f"--kubeconfig={self.kubeconfig}"]
        argv += [*self.always_args, *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its log as it happens
        if exit_after_writes is not None:
            env["RINGLEADER_FAULT_EXIT_AFTER_WRITES"] = str(exit_after_writes)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*argv, "--metrics-port=0"], stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def wait_exit(self, timeout: float) -> int | None:
        """Its exit code, or None if it is still running after timeout seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def dump_stacks(self) -> None:
        """Have it print every thread's stack into its log (SIGUSR1), e.g. when it seems stuck."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(1)

    def kill(self) -> None:
        """SIGKILL: no chance to finish what it was doing."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log, for failure messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class InstalledOperator:
    """The operator installed in the cluster by its Helm chart (LocalCluster.install_operator)."""

    def __init__(self, kube: Kube, image: str) -> None:
        self.kube = kube
        self.image = image

    def log_tail(self, lines: int = 40) -> str:
        """The end of its pod's log, for failure messages."""
        args = ["logs", "-n", OPERATOR_NAMESPACE, f"deploy/{OPERATOR_RELEASE}", f"--tail={lines}"]
        return self.kube.run(*args, check=False)

    def log(self) -> str:
        """Its pod's whole log."""
        return self.kube.run("logs", "-n", OPERATOR_NAMESPACE, f"deploy/{OPERATOR_RELEASE}")


@dataclass(frozen=True)
class LocalNodes:
    """The session's real nodes (kubelet, containerd) and the cluster that runs them."""

    names: list[str]
    cluster: LocalCluster

    def image(self, name: str, on: list[str] | None = None) -> str:
        """The reference of a locally built image, imported into the nodes (or those in on)."""
        [image] = self.cluster.import_images([name], on)
        return image.ref

    def lose(self, name: str, delete: bool = False) -> None:
        """The node's machine vanishes (its containers die); delete: its Node object too."""
        self.cluster.lose_node(name, delete)

    def restore(self, name: str) -> None:
        """Start a lost node again; it registers (again) and turns Ready."""
        self.cluster.start_nodes([name])

    def leftovers(self, pod_uids: list[str]) -> dict[str, list[str]]:
        """What of these pods the nodes still hold: processes in their cgroups, containers in
        containerd, mounts (volumes, the sandbox's network namespace) named by their uids."""
        processes = []
        for proc in Path("/proc").iterdir():
            try:
                cgroups = (proc / "cgroup").read_text() if proc.name.isdigit() else ""
            except OSError:
                continue  # gone meanwhile
            if any(f"pod{uid}" in cgroups for uid in pod_uids):
                processes.append(proc.name)
        containers = []
        for node in open_real_nodes(self.cluster.layout, build=False).existing():
            for uid in pod_uids:
                query = f'labels."io.kubernetes.pod.uid"=={uid}'
                found = node.ctr("containers", "list", "--quiet", query, check=False).stdout
                containers += found.split()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        held = [line.split()[4] for line in mounts if any(uid in line for uid in pod_uids)]
        return {"processes": processes, "containers": containers, "mounts": held}


def node_ready(kube: Kube, name: str) -> bool:
    """True when the node exists and its Ready condition is True."""
    for node in kube.get("nodes")["items"]:
        if node["metadata"]["name"] == name:
            conditions = node["status"].get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return False
