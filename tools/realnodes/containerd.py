"""containerd for one node: its configuration file and command line."""

from __future__ import annotations

from typing import Any

from . import toml
from .nodedirs import NodeDirs

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
RUNC = "/usr/sbin/runc"  # Debian's runc; crun fails on this cgroup v1 hybrid host
K8S_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin keeps pods' images in

# Plugins that would reach outside the node's directories (NRI's socket in /var/run/nri, the
# `opt` plugin's /opt/containerd) or that need tools this host lacks (erofs, blockfile).
DISABLED_PLUGINS = [
    "io.containerd.nri.v1.nri",
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.erofs",
    "io.containerd.differ.v1.erofs",
    "io.containerd.mount-handler.v1.erofs",
    "io.containerd.snapshotter.v1.blockfile",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
]


def _cri_runtime(dirs: NodeDirs) -> dict[str, Any]:
    runc = {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"BinaryName": RUNC, "SystemdCgroup": False},
    }
    return {
        # Root lacks CAP_SYS_RESOURCE here: runc cannot lower a sandbox's oom_score_adj, and
        # without this every sandbox fails ("can't get final child's PID from pipe: EOF").
        "restrict_oom_score_adj": True,
        "netns_mounts_under_state_dir": True,
        "enable_cdi": False,  # it would watch /etc/cdi and /var/run/cdi
        "containerd": {"default_runtime_name": "runc", "runtimes": {"runc": runc}},
        "cni": {"bin_dirs": [CNI_BIN_DIR], "conf_dir": str(dirs.cni_conf_dir), "max_conf_num": 1},
    }


def render_config(dirs: NodeDirs, sandbox_image: str) -> str:
    """The node's config.toml: its own root, state and socket; the pause image pinned."""
    document: dict[str, Any] = {
        "version": 3,
        "root": str(dirs.containerd_root),
        "state": str(dirs.containerd_state),
        "imports": [],  # not /etc/containerd/conf.d: nothing from the host's own containerd
        "disabled_plugins": DISABLED_PLUGINS,
        "grpc": {"address": str(dirs.containerd_socket)},
        "plugins": {
            "io.containerd.cri.v1.images": {
                "snapshotter": "overlayfs",
                "pinned_images": {"sandbox": sandbox_image},
            },
            "io.containerd.cri.v1.runtime": _cri_runtime(dirs),
            "io.containerd.grpc.v1.cri": {
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",  # any free port: several nodes share the host
            },
        },
    }
    return toml.dumps(document)


def argv(binary: str, dirs: NodeDirs) -> list[str]:
    """containerd's command line."""
    return [binary, f"--config={dirs.containerd_config}", "--log-level=warn"]


def ctr_argv(binary: str, dirs: NodeDirs, *args: str) -> list[str]:
    """ctr talking to this node's containerd, in the namespace the CRI uses."""
    return [binary, f"--address={dirs.containerd_socket}", f"--namespace={K8S_NAMESPACE}", *args]
