"""What clusters of real nodes share on one host, set up by the first and undone by the last.

Kernel settings are host-wide: the CNI bridge turns on IP forwarding and the kubelet sets a few
sysctls at start-up. The mount points that nodes bind their own directories over must exist on
the host. A small registry under /run records which clusters run, the settings as they were
before the first, and the directories the first created; the last cluster to stop restores and
removes them, so `down` leaves the host as it was without breaking a cluster still running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REGISTRY = Path("/run/ringleader-realnodes")
# Set by the CNI bridge (isGateway) and by the kubelet (protectKernelDefaults: false).
SYSCTLS = (
    "net.ipv4.ip_forward",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)


def sysctl_path(name: str, proc_sys: Path = Path("/proc/sys")) -> Path:
    """/proc/sys file of a dotted sysctl name."""
    return proc_sys / name.replace(".", "/")


def missing_ancestors(path: Path) -> list[Path]:
    """path and its parents that do not exist yet, outermost first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return list(reversed(missing))


class HostShare:
    """The registry of clusters with real nodes on this host."""

    def __init__(self, root: Path = REGISTRY, proc_sys: Path = Path("/proc/sys")) -> None:
        self.root, self.proc_sys = root, proc_sys

    def _sysctl(self, name: str) -> Path:
        return sysctl_path(name, self.proc_sys)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "clusters").mkdir(exist_ok=True)
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state_file = self.root / "state.json"
            state = json.loads(state_file.read_text()) if state_file.exists() else {}
            yield state
            state_file.write_text(json.dumps(state, indent=2))

    def _others(self, tag: str, alive: Callable[[Path], bool]) -> list[str]:
        """Tags of the other registered clusters still running; stale entries are dropped."""
        others = []
        for marker in (self.root / "clusters").iterdir():
            if marker.name == tag:
                continue
            if alive(Path(marker.read_text().strip())):
                others.append(marker.name)
            else:
                marker.unlink()
        return others

    def join(
        self, tag: str, state_root: Path, mountpoints: list[str], alive: Callable[[Path], bool]
    ) -> None:
        """Register a cluster; the first one records the sysctls; make the mount points."""
        with self._locked() as state:
            if not self._others(tag, alive) and "sysctls" not in state:
                state["sysctls"] = {
                    name: self._sysctl(name).read_text().strip() for name in SYSCTLS
                }
            created = state.setdefault("created", [])
            for mountpoint in mountpoints:
                for path in missing_ancestors(Path(mountpoint)):
                    path.mkdir()
                    created.append(str(path))
            (self.root / "clusters" / tag).write_text(f"{state_root}\n")

    def leave(self, tag: str, alive: Callable[[Path], bool]) -> bool:
        """Unregister a cluster; the last one restores the host. True if it was the last."""
        if not self.root.exists():
            return True
        with self._locked() as state:
            (self.root / "clusters" / tag).unlink(missing_ok=True)
            if self._others(tag, alive):
                return False
            for name, value in state.pop("sysctls", {}).items():
                self._sysctl(name).write_text(f"{value}\n")
            for path in sorted(state.pop("created", []), key=len, reverse=True):
                # OSError: not empty, something else put files there since.
                with contextlib.suppress(OSError):
                    Path(path).rmdir()
        # Nothing is registered any more: the registry itself goes too.
        shutil.rmtree(self.root, ignore_errors=True)
        return True
