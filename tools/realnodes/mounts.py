"""Mounts a node leaves in the host's mount namespace, and the namespaces its daemons run in."""

from __future__ import annotations

import subprocess
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mountpoints(mountinfo: str) -> list[str]:
    """The mount points listed in a mountinfo text, in mount order."""
    return [_unescape(line.split()[4]) for line in mountinfo.splitlines() if line.strip()]


def _is_under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(f"{root}/")


def mounts_under(root: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points at or below root, deepest (most recently mounted) first."""
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    found = [point for point in parse_mountpoints(text) if _is_under(point, root)]
    return list(reversed(found))


def unmount_under(root: Path) -> list[str]:
    """Detach every mount at or below root; return what was mounted."""
    found = mounts_under(root)
    for point in found:
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    return found


def ensure_shared_bind(path: Path) -> None:
    """Make path a mount point of its own with shared propagation.

    The kubelet mounts volumes below its root directory from its own mount namespace; a shared
    mount carries them to the host's namespace and to containerd's, which puts them in pods.
    """
    path.mkdir(parents=True, exist_ok=True)
    if str(path) not in parse_mountpoints(MOUNTINFO.read_text()):
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "--make-rshared", str(path)], check=True)


# Run in the new namespace by `unshare`: bind each SOURCE over its TARGET, then exec the daemon.
# Each target's enclosing mount is made private (in the new namespace only) first, so the binds
# never propagate back to the host even where / is a shared mount (systemd machines).
_BIND_AND_EXEC = """set -e
while [ "$1" != "--" ]; do
  mount --make-private "$(findmnt --noheadings --output TARGET --target "$2")"
  mount --bind "$1" "$2"
  shift 2
done
shift
exec "$@"
"""


def in_mount_namespace(binds: list[tuple[Path, str]], argv: list[str]) -> list[str]:
    """argv run in a new mount namespace where each (source, target) is bind-mounted."""
    pairs = [item for source, target in binds for item in (str(source), target)]
    return [
        "unshare", "--mount", "--propagation", "unchanged", "--",
        "/bin/sh", "-c", _BIND_AND_EXEC, "sh", *pairs, "--", *argv,
    ]  # fmt: skip


def mount_namespace_of(pid: int) -> str | None:
    """The mount namespace a process is in (e.g. 'mnt:[4026532301]'), or None if it is gone."""
    try:
        return str(Path(f"/proc/{pid}/ns/mnt").readlink())
    except OSError:
        return None


def pids_in_mount_namespace(namespace: str) -> list[int]:
    """Every process in that mount namespace."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and mount_namespace_of(int(entry.name)) == namespace:
            pids.append(int(entry.name))
    return pids
