"""Optional Python components beside the control plane: volume provisioner, operator."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .layout import REPO_ROOT, Layout

# /proc/PID/exe of a Python component: the interpreter behind the virtual environment.
PYTHON_BINARY = Path(os.path.realpath(sys.executable)).name
PROVISIONER = "volume-provisioner"
OPERATOR = "operator"


@dataclass(frozen=True)
class Addon:
    """A component run as `python -m MODULE ...` from the repository root."""

    name: str
    argv: list[str]
    binary: str = PYTHON_BINARY
    cwd: Path = REPO_ROOT


def provisioner(layout: Layout) -> Addon:
    """The hostPath volume provisioner behind StorageClass `ringleader-local`."""
    argv = [
        sys.executable, "-m", "tools.localcluster.provisioner",
        f"--kubeconfig={layout.kubeconfig}",
        f"--volumes-dir={layout.root / 'volumes'}",
    ]  # fmt: skip
    return Addon(PROVISIONER, argv)


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
