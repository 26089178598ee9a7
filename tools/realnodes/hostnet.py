"""The host side of the nodes' network: an interface with the node IPs, the CNI bridges."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from .naming import PREFIX, ClusterNaming


class HostNetError(RuntimeError):
    """An `ip` command failed."""


def run_ip(*args: str, check: bool = True) -> str:
    """Run `ip` with args; return its stdout."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise HostNetError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def link_names() -> list[str]:
    """Every network interface of the host's namespace."""
    return [link["ifname"] for link in json.loads(run_ip("-json", "link", "show") or "[]")]


def cluster_links(cluster: ClusterNaming, names: list[str]) -> list[str]:
    """The interfaces among names that belong to this cluster: its dummy and its bridges."""
    own = f"{PREFIX}{cluster.tag}-"
    return [name for name in names if name.startswith(own)]


def ensure_host_interface(cluster: ClusterNaming, node_ips: list[str]) -> None:
    """The host interface up, with the DNS address and every node IP (/32 each).

    A bridge with no ports, not a dummy: kernels without the dummy module (this VM's) have
    bridges, and an address on a port-less bridge is as local as one on a dummy.
    """
    name = cluster.host_interface
    if name not in link_names():
        run_ip("link", "add", name, "type", "bridge")
    shown = run_ip("-o", "addr", "show", "dev", name)
    for address in [cluster.dns_ip, *node_ips]:
        if f" {address}/32 " not in shown:
            run_ip("addr", "add", f"{address}/32", "dev", name)
    run_ip("link", "set", name, "up")


def check_range_free(cluster: ClusterNaming) -> None:
    """Refuse to start when a route not made by this cluster already covers its 10.T.0.0/16."""
    own = set(cluster_links(cluster, link_names()))
    for route in json.loads(run_ip("-json", "route", "show") or "[]"):
        dst, dev = route.get("dst", ""), route.get("dev", "")
        if dst == "default" or dev in own:
            continue
        if cluster.network.overlaps(ipaddress.IPv4Network(dst, strict=False)):
            raise HostNetError(f"route {dst} dev {dev} overlaps this cluster's {cluster.network}")


def delete_links(names: list[str]) -> None:
    """Delete these interfaces (bridges, the dummy); a bridge's pods' veths went with them."""
    for name in names:
        run_ip("link", "del", name, check=False)
