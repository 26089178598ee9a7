"""Render a pod's /etc/hosts and resolv.conf: the headless-service DNS names it can resolve."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import CLUSTER_DOMAIN

HEADER = "# Written by the Ringleader local node agent from the API; rewritten on change.\n"


def qualified_forms(name: str, namespace: str, domain: str = CLUSTER_DOMAIN) -> list[str]:
    """Longest first: name.ns.svc.domain, name.ns.svc, name.ns, name.

    glibc does not apply resolv.conf's search list to /etc/hosts, so every form is listed.
    """
    return [
        f"{name}.{namespace}.svc.{domain}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}",
        name,
    ]


def is_ready(pod: dict[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _published(service: dict[str, Any], pod: dict[str, Any]) -> bool:
    """Would the endpoints controller list this pod's address for the service?"""
    status = pod.get("status", {})
    if not status.get("podIP") or pod["metadata"].get("deletionTimestamp"):
        return False
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    return bool(service["spec"].get("publishNotReadyAddresses")) or is_ready(pod)


def is_headless(service: dict[str, Any]) -> bool:
    """clusterIP None: DNS answers with the pods' own addresses."""
    return bool(service.get("spec", {}).get("clusterIP") == "None")


def build_service_entries(
    service: dict[str, Any], pods: Iterable[dict[str, Any]]
) -> list[tuple[str, list[str]]]:
    """(ip, names) for one headless service: the service name per pod, and hostname.subdomain."""
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    selector = service["spec"].get("selector") or {}
    entries = []
    for pod in pods:
        if pod["metadata"].get("namespace") != namespace or not _published(service, pod):
            continue
        ip = pod["status"]["podIP"]
        spec = pod.get("spec", {})
        if spec.get("hostname") and spec.get("subdomain") == name:
            entries.append((ip, qualified_forms(f"{spec['hostname']}.{name}", namespace)))
        if selector and _selects(selector, pod):
            entries.append((ip, qualified_forms(name, namespace)))
    return entries


def own_names(pod: dict[str, Any]) -> list[str]:
    """The pod's own names as the kubelet writes them: FQDN (with a subdomain) first."""
    spec, namespace = pod.get("spec", {}), pod["metadata"]["namespace"]
    hostname = spec.get("hostname") or pod["metadata"]["name"]
    subdomain = spec.get("subdomain")
    if not subdomain:
        return [hostname]
    return [f"{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}", hostname]


def render_hosts(
    pod: dict[str, Any],
    pod_ip: str,
    services: Iterable[dict[str, Any]],
    pods: list[dict[str, Any]],
) -> str:
    """The whole /etc/hosts of one pod."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{' '.join(own_names(pod))}",
    ]
    namespace = pod["metadata"]["namespace"]
    for service in sorted(services, key=lambda s: s["metadata"]["name"]):
        if service["metadata"].get("namespace") == namespace and is_headless(service):
            entries = build_service_entries(service, pods)
            lines += [f"{ip}\t{' '.join(names)}" for ip, names in sorted(entries)]
    return HEADER + "\n".join(lines) + "\n"


def render_resolv_conf(namespace: str) -> str:
    """Search path as in a cluster (helps tools that use DNS; /etc/hosts ignores it)."""
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"search {search}\nnameserver 127.0.0.1\noptions ndots:5\n"
