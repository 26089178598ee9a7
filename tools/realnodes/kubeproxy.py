"""kube-proxy for one cluster: its KubeProxyConfiguration and command line.

It runs in the cluster's Service router namespace (servicenet.py), not on a node: every node's
pods route Service traffic through that one namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .naming import ClusterNaming

HEALTHZ_PORT = 10256  # in the router's namespace: every cluster can use the same port
METRICS_PORT = 10249


def build_config(cluster: ClusterNaming, kubeconfig: Path, node: str) -> dict[str, Any]:
    """KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) of the cluster's router.

    node: a node of the cluster. kube-proxy waits up to 30 s for the Node it runs on to exist
    (for its addresses, which it does not need here); the first node is there within a second.
    """
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": node,
        "bindAddress": cluster.service_router_ip,  # "the node's IP", not a socket
        # Reachable from the host over the veth pair, so start-up can wait for the first sync.
        "healthzBindAddress": f"{cluster.service_router_ip}:{HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{METRICS_PORT}",
        "clusterCIDR": str(cluster.network),
        "detectLocalMode": "ClusterCIDR",
        # Every Service connection is masqueraded to the router's address, so the replies come
        # back through it to be un-NATed (the endpoints route straight to the client otherwise).
        "iptables": {"masqueradeAll": True, "localhostNodePorts": False},
        # 0: leave the host's conntrack table size and timeouts as they are (they are global).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def render_config(cluster: ClusterNaming, kubeconfig: Path, node: str) -> str:
    """The configuration file's text."""
    return yaml.safe_dump(build_config(cluster, kubeconfig, node), sort_keys=False)


def argv(binary: str, cluster: ClusterNaming, config: Path) -> list[str]:
    """kube-proxy's command line, run inside the router's network namespace."""
    return ["ip", "netns", "exec", cluster.service_netns, binary, f"--config={config}", "--v=1"]


def healthz_url(cluster: ClusterNaming) -> str:
    """Answers 200 once kube-proxy has synced its rules."""
    return f"http://{cluster.service_router_ip}:{HEALTHZ_PORT}/healthz"
