"""Where one real node keeps its files: everything under <cluster state>/nodes/<name>/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Host paths that containerd and the kubelet use whatever they are configured with. Each node's
# processes run in a mount namespace of their own where these are bind mounts of the node's
# directories, so two nodes (and two clusters) never share them, and nothing lands on the host.
CONTAINERD_HOST_PATHS = ("/run/containerd", "/var/lib/cni")  # shim sockets, FIFOs; CNI cache
KUBELET_HOST_PATHS = ("/var/lib/kubelet/device-plugins", "/var/log/containers")
UNIX_SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class NodeDirs:
    """The state directory of one node."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        """Images and snapshots: kept across down/up so images need not be imported again."""
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        """Runtime state (tasks, network namespaces): emptied on down."""
        return self.root / "run" / "containerd-state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "run" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.root / "kubelet.kubeconfig"

    @property
    def kubelet_certs(self) -> Path:
        """The kubelet's self-signed serving certificate."""
        return self.root / "kubelet-pki"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def volume_plugins(self) -> Path:
        return self.root / "volume-plugins"

    def host_bind(self, host_path: str) -> Path:
        """The node's own directory that stands in for host_path in its mount namespace."""
        return self.root / "host" / host_path.strip("/").replace("/", "-")

    @property
    def run_dirs(self) -> list[Path]:
        """Directories of runtime state, emptied when the node stops."""
        return [self.root / "run", *[self.host_bind(p) for p in CONTAINERD_HOST_PATHS]]


def check_socket_path(path: Path) -> None:
    """Unix socket paths are limited to 107 bytes; say so before containerd fails obscurely."""
    if len(str(path)) + len(".ttrpc") > UNIX_SOCKET_PATH_MAX:
        raise ValueError(f"socket path too long for a unix socket: {path} (move the clone?)")
