"""Exec helper, run as a script by the agent: enter a pod's namespaces, mount, exec the command.

`python sandbox.py SPEC.json`. Stdlib only and no package imports, so it starts fast and its
environment is exactly the container's. Mode "run" joins the pod's network namespace, makes a
private mount and UTS namespace, bind-mounts the volumes and /etc files, sets the hostname and
execs the container's command (which keeps this pid, so the agent waits on it directly). Mode
"enter" joins the namespaces of a running container (pid) and execs a probe command.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _setns(path: str, kind: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _check(_libc.setns(fd, kind), f"setns {path}")
    finally:
        os.close(fd)


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    def encode(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    result = _libc.mount(encode(source), encode(target), encode(fstype), flags, None)
    _check(result, f"mount {source} on {target}")


def _bind(source: str, target: str, read_only: bool) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _enter_pod(spec: dict) -> None:  # type: ignore[type-arg]
    _setns(spec["netns"], CLONE_NEWNET)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    # Private: the pod's mounts must neither leak to the host nor receive the host's.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    socket.sethostname(spec["hostname"])
    for mount in spec["mounts"]:
        _bind(mount["source"], mount["target"], bool(mount.get("readOnly")))


def _join_container(pid: int) -> None:
    for name, kind in (("net", CLONE_NEWNET), ("uts", CLONE_NEWUTS), ("mnt", CLONE_NEWNS)):
        _setns(f"/proc/{pid}/ns/{name}", kind)


def main() -> None:
    """Set up per the spec file, then exec; exit 127 with a message if the command is missing."""
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    if spec["mode"] == "run":
        _enter_pod(spec)
    else:
        _join_container(int(spec["pid"]))
    os.chdir(spec["cwd"])
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as error:
        print(f"ringleader-nodeagent: cannot run {argv[0]!r}: {error}", file=sys.stderr)
        sys.exit(127 if isinstance(error, FileNotFoundError) else 126)


if __name__ == "__main__":
    main()
