"""The cluster's Service router: a network namespace where kube-proxy's rules apply.

On a real cluster kube-proxy programs each node's own network namespace. Here every node of every
local cluster routes its pods through the host's namespace, and two kube-proxies there would
rewrite each other's chains (the names are fixed: KUBE-SERVICES, ...). So each cluster gets one
namespace of its own, joined to the host by a veth pair; the host sends the cluster's pods'
traffic for the Service range there (a policy rule matching the cluster's source range, so two
clusters can share 10.96.0.0/16), and kube-proxy, run with masqueradeAll, DNATs it to the
endpoints and masquerades it, so the replies come back through the namespace to be undone.
"""

from __future__ import annotations

import json

from .hostnet import link_names, run_ip
from .naming import ClusterNaming

ROUTER_LINK = "svc0"  # the namespace's end of the veth pair
PREFIX_LENGTH = 30


def _netns_names() -> list[str]:
    found = json.loads(run_ip("-json", "netns", "list") or "[]")
    return [entry["name"] for entry in found]


def _in_netns(cluster: ClusterNaming, *args: str) -> str:
    return run_ip("-n", cluster.service_netns, *args)


def _rule_present(cluster: ClusterNaming) -> bool:
    rules = json.loads(run_ip("-json", "rule", "show") or "[]")
    return any(rule.get("priority") == cluster.routing_table for rule in rules)


def _enable_forwarding(cluster: ClusterNaming) -> None:
    """ip_forward is per network namespace: the router forwards, the host is left alone."""
    run_ip("netns", "exec", cluster.service_netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


def _create_link(cluster: ClusterNaming) -> None:
    host_end = cluster.service_link
    run_ip("link", "add", host_end, "type", "veth", "peer", "name", ROUTER_LINK,
        "netns", cluster.service_netns)  # fmt: skip
    run_ip("addr", "add", f"{cluster.service_host_ip}/{PREFIX_LENGTH}", "dev", host_end)
    run_ip("link", "set", host_end, "up")
    router = f"{cluster.service_router_ip}/{PREFIX_LENGTH}"
    _in_netns(cluster, "addr", "add", router, "dev", ROUTER_LINK)
    _in_netns(cluster, "link", "set", ROUTER_LINK, "up")
    _in_netns(cluster, "link", "set", "lo", "up")  # kube-proxy's healthz, iptables' lookups
    _in_netns(cluster, "route", "add", "default", "via", cluster.service_host_ip)


def ensure(cluster: ClusterNaming, service_cidr: str) -> None:
    """The namespace, the veth pair, and the host's route for the cluster's Service traffic."""
    if cluster.service_netns not in _netns_names():
        run_ip("netns", "add", cluster.service_netns)
    if cluster.service_link not in link_names():
        _create_link(cluster)
    _enable_forwarding(cluster)
    table = str(cluster.routing_table)
    run_ip("route", "replace", "default", "via", cluster.service_router_ip, "table", table)
    if not _rule_present(cluster):
        run_ip("rule", "add", "from", str(cluster.network), "to", service_cidr,
            "table", table, "priority", table)  # fmt: skip


def delete(cluster: ClusterNaming) -> None:
    """Undo ensure: the rule, the table, the namespace (the veth pair goes with it)."""
    table = str(cluster.routing_table)
    while _rule_present(cluster):
        run_ip("rule", "del", "priority", table)
    run_ip("route", "flush", "table", table, check=False)
    if cluster.service_netns in _netns_names():
        run_ip("netns", "del", cluster.service_netns)
    # Deleting the namespace deletes the veth pair; a pair left half-made by a crash might not.
    if cluster.service_link in link_names():
        run_ip("link", "del", cluster.service_link, check=False)
