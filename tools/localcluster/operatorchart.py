"""The operator in the cluster, installed by its Helm chart the way users install it.

Its image is built from operator/Dockerfile and imported into the system node, the one node its
pod may run on (the chart's nodeSelector and tolerations): a training node that is lost never
takes the operator with it. The namespace enforces the restricted Pod Security Standard, which
the chart's pod meets as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.realnodes.naming import NODE_POOL_LABEL, SYSTEM_POOL

from .layout import REPO_ROOT, Layout

RELEASE = "ringleader"  # the chart names its Deployment after the release
NAMESPACE = "ringleader-system"
CHART = REPO_ROOT / "charts" / "ringleader"
INSTALL_TIMEOUT = "180s"


# A namespace's labels that make Pod Security admission enforce (and warn of) the restricted
# standard: the operator's namespace, and those the demo and the e2e tests run jobs in.
RESTRICTED_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")
}


def build_namespace(name: str = NAMESPACE) -> dict[str, Any]:
    """A namespace restricted as a cluster administrator would have it (the operator's)."""
    metadata = {"name": name, "labels": dict(RESTRICTED_LABELS)}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def build_values(image_ref: str) -> dict[str, Any]:
    """The chart's values: the locally built image (never pulled), on the system node."""
    repository, _, tag = image_ref.rpartition(":")
    toleration = {
        "key": NODE_POOL_LABEL,
        "operator": "Equal",
        "value": SYSTEM_POOL,
        "effect": "NoSchedule",
    }
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "nodeSelector": {NODE_POOL_LABEL: SYSTEM_POOL},
        "tolerations": [toleration],
    }


def helm_env(layout: Layout) -> dict[str, str]:
    """Helm's cache, configuration and data under the cluster's state, not the user's home."""
    home = layout.root / "helm"
    return {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def install_argv(layout: Layout, values_file: Path) -> list[str]:
    """`helm upgrade --install` of the chart, waiting until the operator's pod is ready.

    --take-ownership and --force-conflicts: the CRD may have been applied before with
    `kubectl apply --server-side -f crds/` (as `LocalCluster.start_operator` does); the chart's
    copy of it is the same file, and Helm takes it over.
    """
    return [
        layout.binary("helm"), f"--kubeconfig={layout.kubeconfig}",
        "upgrade", "--install", RELEASE, str(CHART), f"--namespace={NAMESPACE}",
        f"--values={values_file}", "--take-ownership", "--force-conflicts",
        "--wait", f"--timeout={INSTALL_TIMEOUT}",
    ]  # fmt: skip
