"""Where a local cluster keeps its files and which ports its components listen on."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of the service range
POD_CIDR = "10.244.0.1/16"  # kwok hands fake pods addresses from here
FAKE_NODE_IP = "10.240.0.1"


@dataclass(frozen=True)
class Layout:
    """One local cluster: its state directory, binaries and port block."""

    root: Path
    bin_dir: Path
    port_base: int = 16400

    def __post_init__(self) -> None:
        # Paths end up in kubeconfigs and flags read from other working directories.
        object.__setattr__(self, "root", self.root.resolve())
        object.__setattr__(self, "bin_dir", self.bin_dir.resolve())

    @property
    def apiserver_port(self) -> int:
        return self.port_base + 43

    @property
    def etcd_port(self) -> int:
        return self.port_base + 79

    @property
    def etcd_peer_port(self) -> int:
        return self.port_base + 80

    @property
    def operator_metrics_port(self) -> int:
        return self.port_base + 88

    @property
    def operator_webhook_port(self) -> int:
        return self.port_base + 89

    @property
    def controller_manager_port(self) -> int:
        return self.port_base + 57

    @property
    def scheduler_port(self) -> int:
        return self.port_base + 59

    @property
    def kwok_port(self) -> int:
        return self.port_base + 47

    @property
    def coredns_ready_port(self) -> int:
        return self.port_base + 53

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: every write by a client that is not the control plane."""
        return self.log_dir / "audit.log"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def nodes_dir(self) -> Path:
        """Real nodes' state: one directory per node (tools/realnodes)."""
        return self.root / "nodes"

    @property
    def tools_dir(self) -> Path:
        """Links to kubectl and helm for the user's PATH."""
        return self.root / "bin"

    def binary(self, name: str) -> str:
        """Absolute path of a cached control-plane binary."""
        return str(self.bin_dir / name)

    def component_kubeconfig(self, identity: str) -> Path:
        """Kubeconfig of one client identity (admin, scheduler, ...)."""
        return self.root / "kubeconfigs" / f"{identity}.kubeconfig"


def cached_bin_dir(build: bool = True, binary_set: str = "control-plane") -> Path:
    """The pinned binaries' directory (tools/build-binaries.sh), built first unless build=False.

    binary_set: "control-plane" (API server, etcd, kwok, ...) or "node" (kubelet, containerd).
    """
    script = str(REPO_ROOT / "tools" / "build-binaries.sh")
    argv = [script, *([] if build else ["--print-dir"]), binary_set]
    result = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


def default_layout(build: bool = True) -> Layout:
    """The developer's cluster: .cluster/ in the repository."""
    port_base = int(os.environ.get("RINGLEADER_CLUSTER_PORT_BASE", "16400"))
    bin_dir = cached_bin_dir(build)
    return Layout(root=REPO_ROOT / ".cluster", bin_dir=bin_dir, port_base=port_base)
