"""One real node: containerd and a kubelet, each in a mount namespace of its own."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.localcluster import processes
from tools.localcluster.kubeconfig import render_kubeconfig
from tools.localcluster.layout import Layout
from tools.localcluster.pki import Pki, ensure_client_cert

from . import cgroups, cni, containerd, kubelet, mounts
from .naming import NodeNaming
from .nodedirs import CONTAINERD_HOST_PATHS, KUBELET_HOST_PATHS, NodeDirs, check_socket_path

SOCKET_TIMEOUT_SECONDS = 30.0
KUBELET_GRACE_SECONDS = 10.0


class NodeError(RuntimeError):
    """A node's daemon failed to start, or a command against it failed."""


@dataclass(frozen=True)
class NodeBinaries:
    """Where the node's binaries are: the cached kubelet/containerd/ctr set."""

    bin_dir: Path

    def path(self, name: str) -> str:
        """Absolute path of one binary."""
        return str(self.bin_dir / name)


class RealNode:
    """A node's files, processes and host state; start and stop are idempotent."""

    def __init__(self, layout: Layout, naming: NodeNaming, binaries: NodeBinaries) -> None:
        self.layout, self.naming, self.binaries = layout, naming, binaries
        self.dirs = NodeDirs(layout.nodes_dir / naming.name)
        self.containerd_name = f"containerd-{naming.name}"
        self.kubelet_name = f"kubelet-{naming.name}"

    def _write_files(self, pki: Pki, sandbox_image: str) -> None:
        dirs, naming = self.dirs, self.naming
        check_socket_path(dirs.containerd_socket)
        for path in [dirs.root, dirs.cni_conf_dir, dirs.kubelet_root, dirs.pod_logs]:
            path.mkdir(parents=True, exist_ok=True)
        for path in [*dirs.run_dirs, *[dirs.host_bind(p) for p in KUBELET_HOST_PATHS]]:
            path.mkdir(parents=True, exist_ok=True)
        dirs.containerd_config.write_text(containerd.render_config(dirs, sandbox_image))
        (dirs.cni_conf_dir / cni.FILE_NAME).write_text(cni.render_conflist(naming))
        dirs.kubelet_config.write_text(kubelet.render_config(naming, dirs, pki.ca_cert))
        stem = f"kubelet-{naming.name}"
        # system:node:NAME in system:nodes: the Node authorizer's and NodeRestriction's identity.
        ensure_client_cert(pki, stem, f"system:node:{naming.name}", "system:nodes")
        text = render_kubeconfig(
            self.layout.server, pki.ca_cert, pki.path(f"{stem}.crt"), pki.path(f"{stem}.key")
        )
        dirs.kubelet_kubeconfig.write_text(text)

    def _binds(self, host_paths: tuple[str, ...]) -> list[tuple[Path, str]]:
        return [(self.dirs.host_bind(path), path) for path in host_paths]

    def containerd_running(self) -> bool:
        """True while this node's containerd runs."""
        return (
            processes.running_pid(self.layout.run_dir, self.containerd_name, "containerd")
            is not None
        )

    def start_containerd(self, pki: Pki, sandbox_image: str) -> None:
        """Write the node's files and start containerd; clean up after a crash first."""
        if self.containerd_running():
            return
        self.stop()  # whatever a previous run left: mounts, cgroups, runtime state
        self._write_files(pki, sandbox_image)
        cgroups.create_root(self.naming.cgroup_root)
        # Before containerd starts, so its namespace shares the kubelet's volume mounts.
        mounts.ensure_shared_bind(self.dirs.kubelet_root)
        argv = containerd.argv(self.binaries.path("containerd"), self.dirs)
        wrapped = mounts.in_mount_namespace(self._binds(CONTAINERD_HOST_PATHS), argv)
        processes.start(self.layout.run_dir, self.layout.log_dir, self.containerd_name, wrapped)

    def wait_containerd(self) -> None:
        """Until containerd answers on its socket."""
        deadline = time.monotonic() + SOCKET_TIMEOUT_SECONDS
        # Not running_pid: until unshare and sh have exec'd it, the process is not containerd yet.
        pid = processes.recorded_pid(self.layout.run_dir, self.containerd_name)
        while self.ctr("version", check=False).returncode != 0:
            if time.monotonic() > deadline or pid is None or not Path(f"/proc/{pid}").exists():
                log = self.layout.log_dir / f"{self.containerd_name}.log"
                raise NodeError(f"{self.containerd_name} did not start: see {log}")
            time.sleep(0.2)

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ctr against this node's containerd (namespace k8s.io)."""
        argv = containerd.ctr_argv(self.binaries.path("ctr"), self.dirs, *args)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} on {self.naming.name}: {result.stderr.strip()}")
        return result

    def image_names(self) -> set[str]:
        """Names of the images this node's containerd holds."""
        return set(self.ctr("images", "list", "--quiet").stdout.split())

    def import_image(self, ref: str, archive: Path) -> bool:
        """Import an OCI archive unless the image is there; True if it was imported."""
        if ref in self.image_names():
            return False
        # Once unpacked, a layer's compressed copy is only dead weight (2.8 GB for torch): the
        # node runs containers from the unpacked snapshots, and there is nothing to push.
        self.ctr("images", "import", "--local", "--discard-unpacked-layers", str(archive))
        if ref not in self.image_names():
            raise NodeError(f"{archive} imported into {self.naming.name}, but no image {ref}")
        return True

    def start_kubelet(self) -> None:
        """Start the kubelet (it registers the node)."""
        if processes.running_pid(self.layout.run_dir, self.kubelet_name, "kubelet"):
            return
        argv = kubelet.argv(self.binaries.path("kubelet"), self.naming, self.dirs)
        wrapped = mounts.in_mount_namespace(self._binds(KUBELET_HOST_PATHS), argv)
        processes.start(self.layout.run_dir, self.layout.log_dir, self.kubelet_name, wrapped)

    def shim_pids(self) -> list[int]:
        """This node's runc shims: their command line names its containerd's socket."""
        marker = f"-address\0{self.dirs.containerd_socket}\0".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    def stop(self) -> list[str]:
        """Stop the kubelet, kill every container, stop containerd; undo all host state."""
        run_dir, stopped = self.layout.run_dir, []
        if processes.stop(run_dir, self.kubelet_name, "kubelet", KUBELET_GRACE_SECONDS):
            stopped.append(self.kubelet_name)
        # The kubelet no longer restarts anything: kill the pods' processes outright.
        cgroups.kill_all(self.naming.cgroup_root)
        if processes.stop(run_dir, self.containerd_name, "containerd"):
            stopped.append(self.containerd_name)
        for pid in self.shim_pids():
            processes.kill(pid)
        mounts.unmount_under(self.dirs.root)
        cgroups.remove_root(self.naming.cgroup_root)
        for path in self.dirs.run_dirs:
            shutil.rmtree(path, ignore_errors=True)
        return stopped
