"""Optional Python components beside the control plane: volume provisioner, local node agent."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.realnodes.naming import local_node_names

from .layout import REPO_ROOT, Layout

# /proc/PID/exe of a Python component: the interpreter behind the virtual environment.
PYTHON_BINARY = Path(os.path.realpath(sys.executable)).name
PROVISIONER = "volume-provisioner"
NODE_AGENT = "node-agent"
OPERATOR = "operator"


@dataclass(frozen=True)
class Addon:
    """A component run as `python -m MODULE ...` from the repository root."""

    name: str
    argv: list[str]
    binary: str = PYTHON_BINARY
    cwd: Path = REPO_ROOT


def pod_network(layout: Layout) -> tuple[str, str]:
    """Bridge and pod range of this cluster's agent: the dev and test clusters differ."""
    index = max(0, layout.port_base // 1000 - 16) % 5
    return f"rlbr{index}", f"10.{250 + index}.0.0/16"


def provisioner(layout: Layout) -> Addon:
    """The hostPath volume provisioner behind StorageClass `ringleader-local`."""
    argv = [
        sys.executable, "-m", "tools.nodeagent.provisioner",
        f"--kubeconfig={layout.kubeconfig}",
        f"--volumes-dir={layout.root / 'volumes'}",
    ]  # fmt: skip
    return Addon(PROVISIONER, argv)


def node_agent(layout: Layout, count: int) -> Addon:
    """The agent running `count` local nodes (root needed); it removes them when stopped."""
    bridge, cidr = pod_network(layout)
    nodes = [f"--node={name}" for name in local_node_names(count)]
    argv = [
        sys.executable, "-m", "tools.nodeagent",
        f"--kubeconfig={layout.kubeconfig}",
        f"--state-dir={layout.root / 'nodeagent'}",
        f"--bridge={bridge}", f"--pod-cidr={cidr}", "--unregister", *nodes,
    ]  # fmt: skip
    return Addon(NODE_AGENT, argv)


def operator(layout: Layout, webhook_args: tuple[str, ...] = ()) -> Addon:
    """The Ringleader operator itself, run from this checkout (`make run` in the background);
    webhook_args serve its admission webhook (LocalCluster.register_operator_webhook)."""
    argv = [
        sys.executable, "-m", "ringleader",
        f"--kubeconfig={layout.kubeconfig}",
        f"--metrics-port={layout.operator_metrics_port}",
        *webhook_args,
    ]  # fmt: skip
    return Addon(OPERATOR, argv)
