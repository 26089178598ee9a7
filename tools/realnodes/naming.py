"""Names and addresses of one cluster's real nodes, derived from its port base.

Two clusters run side by side on one machine (the developer's on 16400, the tests' on 17400), so
everything a node leaves on the host — interfaces, cgroups, address ranges — carries the cluster's
tag, `port_base // 100`: `rn164-b0` is the bridge of node 0 of the cluster on 16400.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

PREFIX = "rn"
LOCAL_NODE_PREFIX = "local-"
# The node the operator installed by the chart runs on, apart from the training nodes: losing a
# training node never takes the operator with it (a system node pool, as on real clusters).
SYSTEM_NODE = f"{LOCAL_NODE_PREFIX}system"
NODE_POOL_LABEL = "ringleader.dev/node-pool"
LOCAL_POOL, SYSTEM_POOL = "local", "system"
HOST_OCTET = 255  # 10.T.255.0/24 holds the host-side addresses: DNS and node IPs
SERVICE_OCTET = 254  # 10.T.254.0/30 joins the host to the cluster's Service router
ROUTING_TABLE_BASE = 1000  # the Service router's routing table and rule priority: 1000 + T
MAX_NODES = 200
NODE_IP_OFFSET = 10


class NamingError(ValueError):
    """The port base or node index cannot be given names that stay apart from other clusters."""


def local_node_names(count: int) -> list[str]:
    """The training nodes: local-0 … local-(count-1)."""
    return [f"{LOCAL_NODE_PREFIX}{index}" for index in range(count)]


def node_index(name: str) -> int:
    """The index a local node's name stands for: local-N is N, the system node the last one."""
    if name == SYSTEM_NODE:
        return MAX_NODES - 1
    number = name.removeprefix(LOCAL_NODE_PREFIX)
    if not number.isdigit() or name == number or int(number) >= MAX_NODES - 1:
        raise NamingError(f"not a local node's name: {name!r} (local-N, N < {MAX_NODES - 1})")
    return int(number)


@dataclass(frozen=True)
class ClusterNaming:
    """The per-cluster names: tag, address range, the host interface and the DNS address."""

    port_base: int

    def __post_init__(self) -> None:
        if self.port_base % 100 or not 0 < self.port_base // 100 < 256:
            raise NamingError(
                f"real nodes need a port base that is a multiple of 100 below 25600, "
                f"not {self.port_base}: its hundreds name the cluster's interfaces and addresses"
            )

    @property
    def tag(self) -> str:
        return str(self.port_base // 100)

    @property
    def network(self) -> ipaddress.IPv4Network:
        """Every pod and host-side address of this cluster: 10.T.0.0/16."""
        return ipaddress.IPv4Network(f"10.{self.tag}.0.0/16")

    @property
    def host_interface(self) -> str:
        """A host interface holding the node IPs and the DNS address (the kubelet refuses lo)."""
        return f"{PREFIX}{self.tag}-host"

    @property
    def dns_ip(self) -> str:
        return f"10.{self.tag}.{HOST_OCTET}.1"

    @property
    def apiserver_ip(self) -> str:
        """Where pods reach the API server (the `kubernetes` Service's endpoint): the host."""
        return self.dns_ip

    @property
    def service_netns(self) -> str:
        """The network namespace where kube-proxy routes this cluster's Services."""
        return f"{PREFIX}{self.tag}-svc"

    @property
    def service_link(self) -> str:
        """The host's end of the veth pair into the Service router's namespace."""
        return f"{PREFIX}{self.tag}-svc"

    @property
    def service_host_ip(self) -> str:
        return f"10.{self.tag}.{SERVICE_OCTET}.1"

    @property
    def service_router_ip(self) -> str:
        return f"10.{self.tag}.{SERVICE_OCTET}.2"

    @property
    def routing_table(self) -> int:
        """The host's routing table (and rule priority) that sends Service traffic to kube-proxy."""
        return ROUTING_TABLE_BASE + int(self.tag)

    def node(self, index: int, name: str) -> NodeNaming:
        """Names of the index-th node, called `name` in the API."""
        if not 0 <= index < MAX_NODES:
            raise NamingError(f"node index {index} outside 0..{MAX_NODES - 1}")
        return NodeNaming(self, index, name)


@dataclass(frozen=True)
class NodeNaming:
    """One node's bridge, pod range, node IP and cgroup root."""

    cluster: ClusterNaming
    index: int
    name: str

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.cluster.tag}-b{self.index}"

    @property
    def pod_cidr(self) -> str:
        return f"10.{self.cluster.tag}.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        """The bridge's own address, the pods' default route."""
        return f"10.{self.cluster.tag}.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.{self.cluster.tag}.{HOST_OCTET}.{NODE_IP_OFFSET + self.index}"

    @property
    def cgroup_root(self) -> str:
        """The kubelet's cgroupRoot: its pods' cgroups stay apart from every other kubelet's."""
        return f"/{PREFIX}{self.cluster.tag}-{self.name}"

    @property
    def pool(self) -> str:
        """The node pool label's value: the system node's own, or the training nodes'."""
        return SYSTEM_POOL if self.name == SYSTEM_NODE else LOCAL_POOL

    @property
    def cni_network(self) -> str:
        """The CNI network name; also names the CNI cache and IPAM files."""
        return f"{PREFIX}{self.cluster.tag}-{self.name}"
