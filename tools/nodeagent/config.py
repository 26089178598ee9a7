"""Names, labels, capacities and paths the agent and its tests share."""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

NODE_POOL_LABEL = "ringleader.dev/node-pool"
LOCAL_POOL = "local"
NODE_CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "20", "ephemeral-storage": "100Gi"}
NODE_LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
AGENT_VERSION = "v1.36.3-ringleader-local"
CLUSTER_DOMAIN = "cluster.local"
DEFAULT_BRIDGE = "rlbr0"
DEFAULT_POD_CIDR = "10.250.0.0/16"
# Pods run from the host's filesystem with this environment's tools first on PATH.
VENV_BIN = str(Path(sys.executable).parent)
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Network:
    """The bridge pods hang off and the range their addresses come from."""

    bridge: str = DEFAULT_BRIDGE
    cidr: str = DEFAULT_POD_CIDR

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        """The bridge's own address: first of the range; also the nodes' InternalIP."""
        return str(self.network.network_address + 1)


@dataclass(frozen=True)
class StateDir:
    """Where the agent keeps what must survive it: IP allocations, pod records, logs, volumes."""

    root: Path

    @property
    def ipam_file(self) -> Path:
        return self.root / "ipam.json"

    @property
    def pods_dir(self) -> Path:
        return self.root / "pods"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def mountpoints_file(self) -> Path:
        return self.root / "created-mountpoints.json"

    def kept_away(self, node: str) -> Path:
        """While this file exists, the deleted node `node` stays away (a machine still down),
        even when no pod is bound to it any more. A test creates and removes it."""
        return self.root / "kept-away" / node

    def pod_dir(self, uid: str) -> Path:
        """Per-pod files: record, /etc files, emptyDirs, sandbox specs, exit codes."""
        return self.pods_dir / uid

    def log_file(self, namespace: str, pod: str, container: str) -> Path:
        """A container's stdout and stderr, appended across restarts; kept after deletion."""
        return self.logs_dir / namespace / pod / f"{container}.log"


def netns_name(uid: str) -> str:
    """The pod's network namespace (`ip netns list`)."""
    return f"rl-{uid[:13]}"


def veth_names(uid: str) -> tuple[str, str]:
    """Host-side and (before rename to eth0) pod-side veth names; at most 15 characters."""
    short = uid.replace("-", "")[:12]
    return f"rlv{short}", f"rlp{short}"
