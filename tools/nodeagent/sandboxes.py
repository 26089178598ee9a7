"""A pod's sandbox: its address, network namespace, /etc files and volumes on the host."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import network, volumes
from .config import Network, StateDir
from .hostsfile import render_resolv_conf
from .ipam import AddressBook
from .kubeapi import Kube
from .mountpoints import Mountpoints

ETC_FILES = ("hosts", "resolv.conf", "hostname")


@dataclass
class Context:
    """What every pod's lifecycle shares: the API, the state directory, the network."""

    kube: Kube
    state: StateDir
    network: Network
    book: AddressBook
    mountpoints: Mountpoints

    @property
    def host_ip(self) -> str:
        return self.network.gateway


def write_in_place(path: Path, text: str) -> bool:
    """Rewrite a file keeping its inode; True if it changed.

    /etc/hosts is bind-mounted into running pods, and a bind mount pins the inode: a
    rename-over would never be seen inside, so the new content goes in with one write.
    """
    data = text.encode()
    if path.exists() and path.read_bytes() == data:
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    return True


def etc_dir(state: StateDir, uid: str) -> Path:
    """The pod's /etc/hosts, resolv.conf and hostname live here on the host."""
    return state.pod_dir(uid) / "etc"


def create_sandbox(
    context: Context, pod: dict[str, Any], render_hosts: Callable[[str], str]
) -> str:
    """Allocate the address, make the network and /etc files; return the pod IP."""
    meta = pod["metadata"]
    uid = meta["uid"]
    directory = context.state.pod_dir(uid)
    directory.mkdir(parents=True, exist_ok=True)
    record = {"uid": uid, "namespace": meta["namespace"], "name": meta["name"], "pids": []}
    (directory / "record.json").write_text(json.dumps(record))
    address = context.book.allocate(uid)
    network.create_pod_network(uid, address, context.network)
    etc = etc_dir(context.state, uid)
    etc.mkdir(exist_ok=True)
    write_in_place(etc / "hosts", render_hosts(address))
    write_in_place(etc / "resolv.conf", render_resolv_conf(meta["namespace"]))
    hostname = pod["spec"].get("hostname") or meta["name"]
    write_in_place(etc / "hostname", hostname + "\n")
    return address


def remember_pid(state: StateDir, uid: str, pid: int) -> None:
    """Add a process group to the pod's record, for cleanup after an agent crash."""
    path = state.pod_dir(uid) / "record.json"
    record = json.loads(path.read_text())
    record["pids"] = [*record["pids"], [pid, process_start_time(pid)]]
    path.write_text(json.dumps(record))


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a recorded process from a later one with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def kill_group(pid: int, sig: signal.Signals) -> None:
    """Signal a container's process group (it is its own session leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def destroy_sandbox(context: Context, uid: str) -> None:
    """Remove network, volumes, files and address of a pod whose processes are gone."""
    network.delete_pod_network(uid)
    directory = context.state.pod_dir(uid)
    volumes.remove_volumes(directory / "volumes")
    shutil.rmtree(directory, ignore_errors=True)
    context.book.release(uid)


def clean_leftovers(context: Context) -> list[str]:
    """Kill and remove every pod a previous agent left behind; return their names."""
    names: list[str] = []
    if not context.state.pods_dir.exists():
        return names
    for directory in context.state.pods_dir.iterdir():
        try:
            record = json.loads((directory / "record.json").read_text())
        except (OSError, ValueError):
            record = {"uid": directory.name, "namespace": "?", "name": "?", "pids": []}
        for pid, started in record["pids"]:
            if started is not None and process_start_time(pid) == started:
                kill_group(pid, signal.SIGKILL)
        destroy_sandbox(context, record["uid"])
        names.append(f"{record['namespace']}/{record['name']}")
    return names
