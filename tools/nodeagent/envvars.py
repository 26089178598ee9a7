"""A container's environment and command line, resolved as the kubelet would (pure)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import HOST_PATH, VENV_BIN

# (kind "configMap"|"secret", namespace, name) → its data decoded as text, or None when missing.
Lookup = Callable[[str, str, str], dict[str, str] | None]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class EnvError(ValueError):
    """A referenced ConfigMap, Secret or field cannot be resolved."""


@dataclass(frozen=True)
class PodFacts:
    """Runtime values the downward API exposes."""

    pod_ip: str
    host_ip: str


def expand(text: str, env: dict[str, str]) -> str:
    """Replace $(VAR) by its value when defined; $$ escapes a dollar, as Kubernetes does."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def resolve_field(pod: dict[str, Any], facts: PodFacts, path: str) -> str:
    """A downward-API fieldRef: metadata.name/namespace/uid, labels/annotations, IPs, node."""
    meta = pod["metadata"]
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if found:
        return str((meta.get(found.group(1)) or {}).get(found.group(2), ""))
    raise EnvError(f"unsupported fieldRef {path!r}")


def cpu_threads(container: dict[str, Any]) -> int:
    """Threads a container may use: its CPU request, else its limit, rounded up; at least 1."""
    resources = container.get("resources") or {}
    quantity = (resources.get("requests") or {}).get("cpu") or (resources.get("limits") or {}).get(
        "cpu"
    )
    if not quantity:
        return 1
    text = str(quantity)
    cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return max(1, math.ceil(cores))


def _key_ref(kind: str, ref: dict[str, Any], namespace: str, lookup: Lookup) -> str | None:
    data = lookup(kind, namespace, ref["name"])
    value = None if data is None else data.get(ref["key"])
    if value is None and not ref.get("optional"):
        raise EnvError(f"{kind} {ref['name']!r} key {ref['key']!r} not found")
    return value


def _value_from(
    source: dict[str, Any], pod: dict[str, Any], facts: PodFacts, lookup: Lookup
) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return resolve_field(pod, facts, source["fieldRef"]["fieldPath"])
    if "configMapKeyRef" in source:
        return _key_ref("configMap", source["configMapKeyRef"], namespace, lookup)
    if "secretKeyRef" in source:
        return _key_ref("secret", source["secretKeyRef"], namespace, lookup)
    raise EnvError(f"unsupported valueFrom {sorted(source)}")


def _env_from(sources: list[dict[str, Any]], namespace: str, lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in sources:
        kind = "configMap" if "configMapRef" in source else "secret"
        ref = source.get("configMapRef") or source.get("secretRef") or {}
        data = lookup(kind, namespace, ref.get("name", ""))
        if data is None and not ref.get("optional"):
            raise EnvError(f"envFrom {kind} {ref.get('name')!r} not found")
        prefix = source.get("prefix", "")
        env.update({prefix + key: value for key, value in (data or {}).items()})
    return env


def build_env(
    pod: dict[str, Any], container: dict[str, Any], facts: PodFacts, lookup: Lookup
) -> dict[str, str]:
    """Base variables, then envFrom, then env in order (each may use $(earlier ones))."""
    hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
    env = {"PATH": f"{VENV_BIN}:{HOST_PATH}", "HOME": "/root", "HOSTNAME": hostname}
    env.update(_env_from(container.get("envFrom") or [], pod["metadata"]["namespace"], lookup))
    for variable in container.get("env") or []:
        if "valueFrom" in variable:
            value = _value_from(variable["valueFrom"], pod, facts, lookup)
            if value is None:
                continue
        else:
            value = expand(variable.get("value", ""), env)
        env[variable["name"]] = value
    threads = str(cpu_threads(container))
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
    return env


def build_argv(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """command + args with $(VAR) expanded; images' entrypoints are unknown here, so required."""
    command = container.get("command") or []
    if not command:
        raise EnvError(
            f"container {container['name']!r} has no command: the local node agent runs "
            "commands on the host and cannot use the image's entrypoint"
        )
    return [expand(part, env) for part in [*command, *(container.get("args") or [])]]
