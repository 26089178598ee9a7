"""Readiness probes (exec, tcpSocket, httpGet), polled without blocking the agent's loop."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SANDBOX = str(Path(__file__).with_name("sandbox.py"))


def resolve_port(port: int | str, container: dict[str, Any]) -> int:
    """A probe's port, by number or by the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for entry in container.get("ports") or []:
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise ValueError(f"no container port named {port!r}")


def _tcp_check(address: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_check(address: str, port: int, path: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}:{port}{path}", timeout=timeout) as answer:
            return bool(200 <= answer.status < 400)
    except OSError:
        return False


@dataclass
class Prober:
    """One container's readiness probe; `ready` follows the thresholds."""

    probe: dict[str, Any]
    container: dict[str, Any]
    pod_ip: str
    spec_file: Path  # sandbox "enter" spec for exec probes, written on start
    ready: bool = False
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    running: tuple[subprocess.Popen[bytes], float] | None = field(default=None, repr=False)

    def start(self, pid: int, env: dict[str, str], cwd: str) -> None:
        """Arm the probe for a container (re)started as pid."""
        self.ready, self.successes, self.failures = False, 0, 0
        self.next_at = time.monotonic() + self.probe.get("initialDelaySeconds", 0)
        if "exec" in self.probe:
            argv = self.probe["exec"]["command"]
            spec = {"mode": "enter", "pid": pid, "cwd": cwd, "argv": argv, "env": env}
            self.spec_file.write_text(json.dumps(spec))

    def _record(self, success: bool) -> None:
        if success:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.probe.get("successThreshold", 1):
                self.ready = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.probe.get("failureThreshold", 3):
                self.ready = False
        self.next_at = time.monotonic() + self.probe.get("periodSeconds", 10)

    def _poll_exec(self) -> None:
        assert self.running is not None
        process, deadline = self.running
        code = process.poll()
        if code is None and time.monotonic() < deadline:
            return
        if code is None:
            process.kill()
            process.wait()
        self.running = None
        self._record(code == 0)

    def tick(self) -> None:
        """Advance the probe: start a check when due, collect an exec check's result."""
        if self.running is not None:
            self._poll_exec()
            return
        if time.monotonic() < self.next_at:
            return
        timeout = float(self.probe.get("timeoutSeconds", 1))
        if "exec" in self.probe:
            command = [sys.executable, "-I", SANDBOX, str(self.spec_file)]
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            self.running = (process, time.monotonic() + timeout)
        elif "tcpSocket" in self.probe:
            port = resolve_port(self.probe["tcpSocket"]["port"], self.container)
            self._record(_tcp_check(self.pod_ip, port, timeout))
        elif "httpGet" in self.probe:
            get = self.probe["httpGet"]
            port = resolve_port(get["port"], self.container)
            self._record(_http_check(self.pod_ip, port, get.get("path", "/"), timeout))
        else:
            self._record(True)  # grpc and others: not checked here, counted as passing

    def stop(self) -> None:
        """Kill a check in flight (the container stopped)."""
        if self.running is not None:
            self.running[0].kill()
            self.running[0].wait()
            self.running = None
        self.ready = False
