"""Start and stop the control plane's daemons as detached processes tracked by pid files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_alive(pid: int, binary: str) -> bool:
    """True when pid runs `binary` (guards against a recycled pid after a reboot)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return Path(exe).name == binary


def recorded_pid(run_dir: Path, name: str) -> int | None:
    """The pid in a component's pid file (it may have exited since)."""
    return _read_pid(run_dir / f"{name}.pid")


def running_pid(run_dir: Path, name: str, binary: str) -> int | None:
    """The pid of a running component, or None."""
    pid = _read_pid(run_dir / f"{name}.pid")
    return pid if pid is not None and _is_alive(pid, binary) else None


def start(run_dir: Path, log_dir: Path, name: str, argv: list[str], cwd: Path | None = None) -> int:
    """Start argv detached from this process, logging to log_dir/NAME.log; return its pid."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `make cluster-up` and ignores its Ctrl-C
            cwd=cwd,
        )
    (run_dir / f"{name}.pid").write_text(f"{process.pid}\n")
    return process.pid


def stop(run_dir: Path, name: str, binary: str, grace_seconds: float = 10.0) -> bool:
    """SIGTERM a component, SIGKILL it after the grace period; True if one was running."""
    pid_file = run_dir / f"{name}.pid"
    pid = running_pid(run_dir, name, binary)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not _is_alive(pid, binary):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def resident_memory_bytes(pid: int) -> int:
    """Resident set size of one process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def kill(pid: int) -> None:
    """SIGKILL one process, if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
