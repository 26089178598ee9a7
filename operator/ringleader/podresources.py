"""What a worker pod asks the scheduler for, and what a gang of them asks for together (pure).

A gang scheduler admits a PodGroup only when its minResources fit: Volcano's enqueue action and
a queue's capability, coscheduling's PreFilter against the cluster's free capacity. Without
them every gang looks admissible and waits, Pending, where it can never fit.

A pod's request is the scheduler's: per resource, the sum over its containers (and sidecars), or
the largest init container with the sidecars started before it if that is more, plus the pod's
overhead. A container's limit stands in for a request it leaves out, as the API server defaults.
Pod-level resources (spec.resources, CPU and memory only), where set, replace those sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

from ringleader.quantity import parse_quantity

Obj = Mapping[str, Any]
Amounts = dict[str, Decimal]


def _add(a: Amounts, b: Amounts) -> Amounts:
    return {k: a.get(k, Decimal(0)) + b.get(k, Decimal(0)) for k in {*a, *b}}


def _larger(a: Amounts, b: Amounts) -> Amounts:
    return {k: max(a.get(k, Decimal(0)), b.get(k, Decimal(0))) for k in {*a, *b}}


def container_requests(container: Obj) -> Amounts:
    """A container's requests, with its limits for the resources it requests nothing of."""
    resources = container.get("resources") or {}
    asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: parse_quantity(amount) for name, amount in asked.items()}


def _sum(containers: Iterable[Obj]) -> Amounts:
    total: Amounts = {}
    for container in containers:
        total = _add(total, container_requests(container))
    return total


def pod_requests(pod_spec: Obj) -> Amounts:
    """What the scheduler reserves on a node for a pod of this spec."""
    sidecars: Amounts = {}
    init_peak: Amounts = {}
    for init in pod_spec.get("initContainers") or []:
        if init.get("restartPolicy") == "Always":  # a sidecar: it runs on beside the rest
            sidecars = _add(sidecars, container_requests(init))
        else:
            init_peak = _larger(init_peak, _add(sidecars, container_requests(init)))
    running = _add(_sum(pod_spec.get("containers") or []), sidecars)
    pod_level = container_requests(pod_spec)  # spec.resources has a container's shape
    overhead = {k: parse_quantity(v) for k, v in (pod_spec.get("overhead") or {}).items()}
    return _add({**_larger(running, init_peak), **pod_level}, overhead)


def format_quantity(amount: Decimal) -> str:
    """A Kubernetes quantity for an amount: whole units, or thousandths rounded up."""
    if amount == amount.to_integral_value():
        return str(int(amount))
    return f"{int((amount * 1000).to_integral_value(ROUND_CEILING))}m"


def gang_requests(pod_spec: Obj, members: int) -> dict[str, str]:
    """What `members` pods of this spec ask for together, as a PodGroup's minResources.

    Empty when an amount is not a quantity: creating the pods reports that, naming the field."""
    try:
        per_pod = pod_requests(pod_spec)
    except ValueError:
        return {}
    return {
        name: format_quantity(amount * members)
        for name, amount in sorted(per_pod.items())
        if amount > 0
    }
