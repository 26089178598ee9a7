"""The CNI network of one node: a bridge of its own, addresses from its own /24."""

from __future__ import annotations

import json
from typing import Any

from .naming import NodeNaming

CNI_VERSION = "1.0.0"  # the newest the Debian 12 plugins (1.1.1) speak
FILE_NAME = "10-ringleader.conflist"


def build_conflist(node: NodeNaming) -> dict[str, Any]:
    """bridge + host-local: pods get 10.T.N.x and route everything through the bridge.

    No masquerading: a pod reaches a pod on another node by its own address, as on a real
    cluster. Every node's bridge is on this host, so the host's connected routes already join
    the nodes' ranges; nothing else (no overlay, no iptables rule) is needed.
    """
    bridge = {
        "type": "bridge",
        "bridge": node.bridge,
        "isGateway": True,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": node.pod_cidr, "gateway": node.gateway}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    }
    return {"cniVersion": CNI_VERSION, "name": node.cni_network, "plugins": [bridge]}


def render_conflist(node: NodeNaming) -> str:
    """The conflist file's text."""
    return json.dumps(build_conflist(node), indent=2) + "\n"
