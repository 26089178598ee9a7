"""Fixtures for tests that need the CRD installed and the operator running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube import Kube, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_NAME = "distributedtrainingjobs.ringleader.dev"


class OperatorProcess:
    """The operator as users run it (`python -m ringleader`), as a child process of the tests."""

    def __init__(self, kubeconfig: Path, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, exit_after_writes: int | None = None) -> None:
        """Start it (again), appending to the same log; optionally dying after N writes."""
        argv = [sys.executable, "-m", "ringleader", f"--kubeconfig={self.kubeconfig}"]
        env = dict(os.environ)
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
    kube: Kube, crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the session; a test may kill and restart it."""
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(kube.kubeconfig, log_path)
    process.start()
    yield process
    process.stop()
