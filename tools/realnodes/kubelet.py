"""The kubelet of one node: its KubeletConfiguration and command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .naming import NODE_POOL_LABEL, SYSTEM_POOL, NodeNaming
from .nodedirs import NodeDirs

# Only pods that tolerate it run on the system node: training pods never land there.
SYSTEM_TAINT = f"{NODE_POOL_LABEL}={SYSTEM_POOL}:NoSchedule"
KUBELET_PORT = 10250  # each kubelet binds its own node IP, so every node can use the same port
HEALTHZ_PORT = 10248
CLUSTER_DOMAIN = "cluster.local"
# Pressure thresholds: the nodes share one disk with the developer's other work and every
# node's copy of the images, so the default 10-15 % free would evict pods for reasons that
# have nothing to do with the node under test. Free space is a size, not a share: on a large
# disk of which the machine may use only part, 1 % was 2.5 GB that a test run could reach,
# and under DiskPressure the kubelet deletes the images it is not running, which nothing can
# pull again (they were imported): every later pod of them waits forever.
EVICTION_HARD = {
    "memory.available": "100Mi",
    "nodefs.available": "256Mi",
    "nodefs.inodesFree": "1%",
    "imagefs.available": "256Mi",
}


def _auth(ca_file: Path) -> dict[str, Any]:
    # The API server proves itself with a client certificate from the cluster CA (logs, exec);
    # the kubelet asks the API server whether a caller may do what it asks.
    return {
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
    }


def build_config(node: NodeNaming, dirs: NodeDirs, ca_file: Path) -> dict[str, Any]:
    """KubeletConfiguration (kubelet.config.k8s.io/v1beta1) of one node."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        **_auth(ca_file),
        "address": node.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": node.node_ip,
        "healthzPort": HEALTHZ_PORT,
        "containerRuntimeEndpoint": f"unix://{dirs.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "failCgroupV1": False,  # this host has cgroup v1; without it the kubelet exits at once
        "failSwapOn": False,
        # Else the kubelet adds a KUBE-FIREWALL rule to the host's own INPUT/OUTPUT chains.
        "makeIPTablesUtilChains": False,
        # Images are imported by hand (there is no registry to pull them again from).
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": EVICTION_HARD,
        "clusterDNS": [node.cluster.dns_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        "podLogsDir": str(dirs.pod_logs),
        "volumePluginDir": str(dirs.volume_plugins),
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
    }


def render_config(node: NodeNaming, dirs: NodeDirs, ca_file: Path) -> str:
    """The configuration file's text."""
    return yaml.safe_dump(build_config(node, dirs, ca_file), sort_keys=False)


def argv(binary: str, node: NodeNaming, dirs: NodeDirs) -> list[str]:
    """The kubelet's command line (what its config file cannot say)."""
    taints = [f"--register-with-taints={SYSTEM_TAINT}"] if node.pool == SYSTEM_POOL else []
    return [
        binary,
        f"--config={dirs.kubelet_config}",
        f"--kubeconfig={dirs.kubelet_kubeconfig}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.node_ip}",
        f"--root-dir={dirs.kubelet_root}",
        f"--cert-dir={dirs.kubelet_certs}",
        f"--node-labels={NODE_POOL_LABEL}={node.pool}",
        *taints,
        "--v=1",
    ]
