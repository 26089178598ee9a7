"""Fixtures for trainer tests: free ports, the rendezvous program, "pods" as local processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ringleader import rendezvous
from ringleader_client.progressfiles import heartbeat_path, read_json

REPO = Path(__file__).resolve().parents[2]


def pick_free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll check until it is true; fail the test with `what` at the deadline."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(0.02)


def child_env(**extra: str) -> dict[str, str]:
    """Return an environment for trainer processes: one thread each, unbuffered."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@pytest.fixture
def rendezvous_port(tmp_path: Path) -> Iterator[int]:
    """Run the rendezvous pod's own program (the operator's) and yield its port."""
    port = pick_free_port()
    log = (tmp_path / "rendezvous.log").open("w")
    command = rendezvous.build_command(port)
    proc = subprocess.Popen(
        [sys.executable, *command[1:]],  # python3 of this environment
        env=child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    listening = lambda: "listening" in (tmp_path / "rendezvous.log").read_text()  # noqa: E731
    wait_until(listening, 60, "the rendezvous")
    yield port
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def descendants(pid: int) -> list[int]:
    """Every process below pid (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    found, frontier = [], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        found += frontier
    return found


@dataclass
class Pod:
    """A launcher process standing in for one worker pod."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    ckpt: Path

    def output(self) -> str:
        """Return everything the pod printed so far."""
        return self.log.read_text()

    def heartbeat(self) -> dict[str, Any]:
        """Return the pod's heartbeat, or {} before its first one."""
        return read_json(heartbeat_path(self.ckpt, self.name)) or {}

    def wait(self, timeout: float = 240) -> int:
        """Wait for the launcher to exit and return its code; on a hang, show where it hangs."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tail = self.show_stacks()
            raise AssertionError(f"{self.name} still running after {timeout}s:\n{tail}") from None

    def show_stacks(self) -> str:
        """Have the pod's workers print their threads' stacks; return the tail of its output."""
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        time.sleep(2)
        return "\n".join(self.output().splitlines()[-80:])


@dataclass
class Cluster:
    """Starts pods of one job against one rendezvous, all sharing a checkpoint directory."""

    tmp: Path
    rendezvous_port: int
    ckpt: Path
    pods: list[Pod] = field(default_factory=list)

    def start_pod(
        self,
        name: str,
        nnodes: str,
        args: list[str],
        *,
        rdzv_id: str = "job-0",
        nproc: int = 1,
        max_restarts: int = 0,
        env: dict[str, str] | None = None,
    ) -> Pod:
        """Start a launcher with its own PET_* env, as the operator would configure a pod
        (env: more of the operator's contract, e.g. a pre-flight)."""
        env = child_env(
            **(env or {}),
            PET_NNODES=nnodes,
            PET_NPROC_PER_NODE=str(nproc),
            PET_RDZV_BACKEND="c10d",
            PET_RDZV_ENDPOINT=f"127.0.0.1:{self.rendezvous_port}",
            PET_RDZV_ID=rdzv_id,
            PET_RDZV_CONF="is_host=false",
            PET_MAX_RESTARTS=str(max_restarts),
            RINGLEADER_CHECKPOINT_DIR=str(self.ckpt),
            RINGLEADER_CHECKPOINT_KEEP="3",
            RINGLEADER_POD_NAME=name,
            RINGLEADER_JOB_NAME="test-job",
            RINGLEADER_PROGRESS_PORT=str(pick_free_port()),
        )
        log = self.tmp / f"{name}-{rdzv_id}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ringleader_trainer.launch", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
                start_new_session=True,  # its own process group, so teardown can end its workers
            )
        pod = Pod(name, proc, log, self.ckpt)
        self.pods.append(pod)
        return pod

    def run_job(
        self,
        pods: int,
        args: list[str],
        rdzv_id: str = "job-0",
        nproc: int = 1,
        timeout: float = 240,
        *,
        env: dict[str, str] | None = None,
    ) -> list[Pod]:
        """Run a fixed-size job to completion and check every pod exits 0."""
        nnodes = f"{pods}:{pods}"
        started = [
            self.start_pod(f"pod-{i}", nnodes, args, rdzv_id=rdzv_id, nproc=nproc, env=env)
            for i in range(pods)
        ]
        for pod in started:
            code = pod.wait(timeout)
            assert code == 0, f"{pod.name} exited {code}:\n{pod.output()[-3000:]}"
        return started


@pytest.fixture
def cluster(tmp_path: Path, rendezvous_port: int) -> Iterator[Cluster]:
    """A rendezvous plus a shared checkpoint directory; leftover pods are killed at the end.

    A pod still running then is shown (a failed test's report includes it): when one pod hangs
    the test reports that one, but the cause is often in its peer."""
    made = Cluster(tmp_path, rendezvous_port, tmp_path / "ckpt")
    yield made
    for pod in made.pods:
        if pod.proc.poll() is None:
            print(f"--- {pod.name} was still running:\n{pod.show_stacks()}")
            os.killpg(pod.proc.pid, signal.SIGKILL)
            pod.proc.wait()
