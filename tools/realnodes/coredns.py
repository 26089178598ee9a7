"""The cluster DNS: CoreDNS as a host process, answering pods on the cluster's DNS address."""

from __future__ import annotations

from pathlib import Path

from .kubelet import CLUSTER_DOMAIN
from .naming import ClusterNaming

HOST_RESOLV_CONF = "/etc/resolv.conf"


def render_corefile(cluster: ClusterNaming, kubeconfig: Path, ready_port: int) -> str:
    """Service, pod and headless names from the API server; anything else to the host's resolver.

    `ready` answers 200 on 127.0.0.1:ready_port once the kubernetes plugin has synced, so start-up
    can wait for names to resolve rather than for a port to open.
    """
    return f"""\
.:53 {{
    bind {cluster.dns_ip}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . {HOST_RESOLV_CONF}
    cache 5
}}
"""


def argv(binary: str, corefile: Path) -> list[str]:
    """CoreDNS's command line."""
    return [binary, "-conf", str(corefile)]
