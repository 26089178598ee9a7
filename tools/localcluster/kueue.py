"""Kueue out of cluster: its configuration, its metrics certificates, its webhooks on loopback.

In a cluster Kueue makes its own webhook certificate and serves behind a Service; here it runs
as a host process, so internal certificate management is off, the webhook serves a certificate
from the cluster's CA on 127.0.0.1, and the release's webhook configurations are registered with
`clientConfig.url` pointing there (only those of the integrations enabled: a webhook for a kind
Kueue does not serve would refuse every such object).
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Kueue reads its metrics certificate from this fixed path whenever it does not manage its own.
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
NAMESPACE = "kueue-system"
# The integrations enabled here, and the (apiGroup, resource) of the objects each admits.
FRAMEWORKS = {"batch/job": ("batch", "jobs")}
KUEUE_GROUP = "kueue.x-k8s.io"
# As Kueue's own install: its job webhooks skip the system namespaces.
SKIP_SYSTEM_NAMESPACES = {
    "matchExpressions": [
        {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", NAMESPACE],
        }
    ]
}
WEBHOOK_CONFIGURATIONS = {
    "MutatingWebhookConfiguration": "kueue-mutating-webhook-configuration",
    "ValidatingWebhookConfiguration": "kueue-validating-webhook-configuration",
}


EXTERNAL_FRAMEWORK = "DistributedTrainingJob.v1alpha1.ringleader.dev"  # Kind.version.group


@dataclass(frozen=True)
class Ports:
    """Kueue's loopback ports."""

    webhook: int
    metrics: int
    health: int


def build_config(ports: Ports, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2) for a host process."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{ports.health}"},
        "metrics": {"bindAddress": f"127.0.0.1:{ports.metrics}"},
        "webhook": {"host": "127.0.0.1", "port": ports.webhook, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "clientConnection": {"qps": 300, "burst": 500},
        # The visibility API server would need an APIService and a port of its own.
        "featureGates": {"VisibilityOnDemand": False},
        # The operator drives its jobs' Workloads itself (operator/ringleader/queueing.py);
        # registered, its kind is one Kueue knows to be managed outside it.
        "integrations": {
            "frameworks": sorted(FRAMEWORKS),
            "externalFrameworks": [EXTERNAL_FRAMEWORK],
        },
    }


def ensure_metrics_certs(cert_dir: Path) -> None:
    """Put a certificate at Kueue's fixed metrics path unless one is there (needs root once)."""
    if (METRICS_CERT_DIR / "tls.crt").exists() and (METRICS_CERT_DIR / "tls.key").exists():
        return
    METRICS_CERT_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        shutil.copyfile(cert_dir / name, METRICS_CERT_DIR / name)


def _admits(webhook: dict[str, Any]) -> bool:
    """True for webhooks of Kueue's own objects and of the integrations enabled."""
    enabled = set(FRAMEWORKS.values())
    for rule in webhook.get("rules") or []:
        for group in rule.get("apiGroups") or []:
            if group == KUEUE_GROUP:
                return True
            if any((group, resource) in enabled for resource in rule.get("resources") or []):
                return True
    return False


def _point_at_loopback(webhook: dict[str, Any], port: int, ca_bundle: str) -> dict[str, Any]:
    path = webhook["clientConfig"]["service"]["path"]
    rewritten = {**webhook, "clientConfig": {"url": f"https://127.0.0.1:{port}{path}"}}
    rewritten["clientConfig"]["caBundle"] = ca_bundle
    if not any(KUEUE_GROUP in (r.get("apiGroups") or []) for r in webhook.get("rules") or []):
        rewritten["namespaceSelector"] = SKIP_SYSTEM_NAMESPACES
    return rewritten


def build_webhook_configurations(manifests: Path, port: int, ca_cert: Path) -> list[dict[str, Any]]:
    """The release's webhook configurations, served by Kueue on 127.0.0.1:port."""
    ca_bundle = base64.b64encode(ca_cert.read_bytes()).decode()
    configurations = []
    for document in yaml.safe_load_all(manifests.read_text()):
        if not document or document.get("kind") not in WEBHOOK_CONFIGURATIONS:
            continue
        webhooks = [
            _point_at_loopback(webhook, port, ca_bundle)
            for webhook in document.get("webhooks") or []
            if _admits(webhook)
        ]
        metadata = {"name": WEBHOOK_CONFIGURATIONS[document["kind"]]}
        configurations.append({**document, "metadata": metadata, "webhooks": webhooks})
    return configurations
