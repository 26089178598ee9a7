"""Processes the tests run beside the cluster: the operator, and the local node agent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.kube import Kube
from tools.localcluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE
from tools.localcluster.operatorchart import RELEASE as OPERATOR_RELEASE
from tools.nodeagent.config import StateDir

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


# The test cluster's local nodes, apart from the developer cluster's agent (rlbr0, 10.250/16).
LOCAL_NODES = ["local-test-0", "local-test-1"]
LOCAL_BRIDGE, LOCAL_POD_CIDR = "rlbr9", "10.249.0.0/16"


@dataclass(frozen=True)
class LocalNodes:
    """The node agent started for a test session."""

    state: StateDir
    process: subprocess.Popen[bytes]

    @contextlib.contextmanager
    def kept_away(self, node: str) -> Iterator[None]:
        """Within this block, `node` once deleted stays away, like a machine still down; it
        registers again when the block ends (and no pod is bound to it)."""
        marker = self.state.kept_away(node)
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
        try:
            yield
        finally:
            marker.unlink()


def start_node_agent(kubeconfig: Path, state: Path) -> subprocess.Popen[bytes]:
    """Start the local node agent for LOCAL_NODES (it removes its nodes when stopped)."""
    argv = [
        sys.executable, "-m", "tools.nodeagent", f"--kubeconfig={kubeconfig}",
        f"--state-dir={state}", f"--bridge={LOCAL_BRIDGE}", f"--pod-cidr={LOCAL_POD_CIDR}",
        "--unregister", *[f"--node={name}" for name in LOCAL_NODES],
    ]  # fmt: skip
    with open(state / "agent.log", "ab") as log:
        return subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def node_ready(kube: Kube, name: str) -> bool:
    """True when the node exists and its Ready condition is True."""
    for node in kube.get("nodes")["items"]:
        if node["metadata"]["name"] == name:
            conditions = node["status"].get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return False
