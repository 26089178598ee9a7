"""A node's cgroup root (the kubelet's cgroupRoot) in every hierarchy, and its removal."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """The mounted hierarchies: /sys/fs/cgroup/<controller> on v1 or hybrid hosts, else itself."""
    if (CGROUP_FS / "cgroup.controllers").exists():  # unified (v2) only
        return [CGROUP_FS]
    return sorted(path for path in CGROUP_FS.iterdir() if path.is_dir() and path.is_mount())


def create_root(root: str) -> None:
    """mkdir the root in each hierarchy; the kubelet refuses a cgroupRoot that does not exist."""
    for hierarchy in hierarchies():
        path = hierarchy / root.lstrip("/")
        path.mkdir(exist_ok=True)
        # A new v1 cpuset has no CPUs and no memory nodes: tasks could not join it.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (path / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((hierarchy / name).read_text())


def _subtree(hierarchy: Path, root: str) -> list[Path]:
    """Every cgroup at or below root, children before parents."""
    top = hierarchy / root.lstrip("/")
    if not top.is_dir():
        return []
    found = [Path(dirpath) for dirpath, _, _ in os.walk(top)]
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def pids_under(root: str) -> set[int]:
    """Every process in the root's subtree, in any hierarchy."""
    pids: set[int] = set()
    for hierarchy in hierarchies():
        for cgroup in _subtree(hierarchy, root):
            try:
                pids.update(int(line) for line in (cgroup / "cgroup.procs").read_text().split())
            except OSError:
                continue
    return pids


def kill_all(root: str, timeout: float = 10.0) -> int:
    """SIGKILL every process below root until none is left; return how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (pids := pids_under(root)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.1)
    return len(killed)


def remove_root(root: str) -> None:
    """rmdir the root's subtree in each hierarchy (its processes must be gone)."""
    for hierarchy in hierarchies():
        for cgroup in _subtree(hierarchy, root):
            try:
                cgroup.rmdir()
            except OSError:
                time.sleep(0.1)  # a cgroup empties a moment after its last task exits
                cgroup.rmdir()
