"""Pod networking with iproute2: a bridge on the host, a network namespace and veth per pod."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .config import Network, netns_name, veth_names

NETNS_DIR = Path("/run/netns")


class NetworkError(RuntimeError):
    """An `ip` command failed."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def link_exists(name: str) -> bool:
    """A network device of that name exists in the host's namespace."""
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def ensure_bridge(network: Network) -> None:
    """Create the bridge with the gateway address (idempotent)."""
    if not link_exists(network.bridge):
        _ip("link", "add", network.bridge, "type", "bridge")
    prefix = network.network.prefixlen
    shown = _ip("-o", "addr", "show", "dev", network.bridge).stdout
    if f" {network.gateway}/{prefix} " not in shown:
        _ip("addr", "add", f"{network.gateway}/{prefix}", "dev", network.bridge)
    _ip("link", "set", network.bridge, "up")


def remove_bridge(network: Network) -> None:
    """Delete the bridge (pods' veths must be gone already)."""
    if link_exists(network.bridge):
        _ip("link", "del", network.bridge, check=False)


def netns_path(uid: str) -> Path:
    """The bind-mounted namespace file `ip netns add` creates."""
    return NETNS_DIR / netns_name(uid)


def create_pod_network(uid: str, address: str, network: Network) -> None:
    """A namespace with lo up and eth0 = address, a veth into the bridge, default via gateway."""
    delete_pod_network(uid)  # half-made leftovers of an interrupted attempt
    name = netns_name(uid)
    host_side, pod_side = veth_names(uid)
    prefix = network.network.prefixlen
    _ip("netns", "add", name)
    _ip("link", "add", host_side, "type", "veth", "peer", "name", pod_side)
    _ip("link", "set", pod_side, "netns", name)
    _ip("link", "set", host_side, "master", network.bridge, "up")
    _ip("-n", name, "link", "set", pod_side, "name", "eth0")
    _ip("-n", name, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
    _ip("-n", name, "link", "set", "eth0", "up")
    _ip("-n", name, "link", "set", "lo", "up")
    _ip("-n", name, "route", "add", "default", "via", network.gateway)


def delete_pod_network(uid: str) -> None:
    """Remove the namespace and the host-side veth (each only if present)."""
    host_side, pod_side = veth_names(uid)
    for device in (host_side, pod_side):
        if link_exists(device):
            _ip("link", "del", device, check=False)
    if netns_path(uid).exists():
        _ip("netns", "del", netns_name(uid), check=False)
