"""A small kubectl wrapper for tests: tests act on the cluster the way users do."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ringleader import constants as c
from ringleader.naming import TOKEN_ALPHABET, TOKEN_LENGTH
from tools.localcluster.cluster import kubectl_binary

T = TypeVar("T")


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message holds its stderr."""


@dataclass(frozen=True)
class Kube:
    """kubectl bound to one kubeconfig."""

    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run kubectl; return stdout, raise KubectlError on failure when check is set."""
        argv = [kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise KubectlError(result.stderr.strip() or result.stdout.strip())
        return result.stdout

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]], namespace: str) -> str:
        """kubectl apply one object or a list of objects."""
        if isinstance(manifest, list):
            manifest = {"apiVersion": "v1", "kind": "List", "items": manifest}
        return self.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))

    def get(self, kind: str, name: str = "", namespace: str | None = None, **selectors: str) -> Any:
        """kubectl get -o json, parsed; `selector=` is passed as -l."""
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if "selector" in selectors:
            args += ["-l", selectors["selector"]]
        return json.loads(self.run(*args))


def wait_until(
    probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.3, what: str = ""
) -> T:
    """Poll probe until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: last={last!r}")


# --- Worker pods, found as users find them: by their labels. A worker pod's name is its slot and
# a token of its own (<job>-worker-<index>-a<attempt>-<token>), new for every incarnation, so
# a test never writes one down: it asks for the pod of a replica index and restart attempt.

WORKER_TOKEN = f"[{TOKEN_ALPHABET}]{{{TOKEN_LENGTH}}}"


def worker_selector(job: str, index: int | None = None, attempt: int | None = None) -> str:
    """Label selector of a job's worker pods; of one replica index and attempt when given."""
    labels = {c.LABEL_JOB_NAME: job, c.LABEL_ROLE: c.ROLE_WORKER}
    if index is not None:
        labels[c.LABEL_REPLICA_INDEX] = str(index)
    if attempt is not None:
        labels[c.LABEL_RESTART_ATTEMPT] = str(attempt)
    return ",".join(f"{key}={value}" for key, value in labels.items())


def find_workers(
    kube: Kube, namespace: str, job: str, index: int | None = None, attempt: int | None = None
) -> list[dict[str, Any]]:
    """The job's worker pods (of one index and attempt when given), by slot, oldest first."""
    selector = worker_selector(job, index, attempt)
    found: list[dict[str, Any]] = kube.get("pods", namespace=namespace, selector=selector)["items"]
    return sorted(found, key=_slot_order)


def _slot_order(pod: dict[str, Any]) -> tuple[int, int, str, str]:
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    attempt, index = labels[c.LABEL_RESTART_ATTEMPT], labels[c.LABEL_REPLICA_INDEX]
    return int(attempt), int(index), meta.get("creationTimestamp") or "", meta["name"]


def slot_of(pod: dict[str, Any]) -> str:
    """A worker pod's slot, <job>-worker-<index>-a<attempt>, from its labels; asserts that its
    name is that slot and a token."""
    labels = pod["metadata"]["labels"]
    job, index = labels[c.LABEL_JOB_NAME], labels[c.LABEL_REPLICA_INDEX]
    slot = f"{job}-worker-{index}-a{labels[c.LABEL_RESTART_ATTEMPT]}"
    name = pod["metadata"]["name"]
    assert re.fullmatch(f"{re.escape(slot)}-{WORKER_TOKEN}", name), f"{name} is not of {slot}"
    return slot


def known_as(pod: dict[str, Any]) -> str:
    """A worker pod's slot (slot_of); any other pod's name."""
    labels = pod["metadata"].get("labels") or {}
    return slot_of(pod) if labels.get(c.LABEL_ROLE) == c.ROLE_WORKER else pod["metadata"]["name"]


def is_live(pod: dict[str, Any]) -> bool:
    """Not being deleted."""
    return not pod["metadata"].get("deletionTimestamp")


def live_worker(
    kube: Kube, namespace: str, job: str, index: int, *, attempt: int = 0, other_than: str = ""
) -> dict[str, Any] | None:
    """The pod of a slot that is not being deleted (other than the pod of uid `other_than`:
    its replacement), if there is one."""
    found = find_workers(kube, namespace, job, index, attempt)
    live = [p for p in found if is_live(p) and p["metadata"]["uid"] != other_than]
    return live[0] if live else None


def wait_for_worker(
    kube: Kube,
    namespace: str,
    job: str,
    index: int,
    *,
    attempt: int = 0,
    other_than: str = "",
    timeout: float = 120.0,
) -> dict[str, Any]:
    """The live pod of a slot once there is one (other than the pod of uid `other_than`: its
    replacement)."""
    what = f"a pod of {job}-worker-{index}-a{attempt}" + (
        f" but {other_than}" if other_than else ""
    )
    return wait_until(
        lambda: live_worker(kube, namespace, job, index, attempt=attempt, other_than=other_than),
        timeout,
        what=what,
    )


def worker_name(kube: Kube, namespace: str, job: str, index: int, attempt: int = 0) -> str:
    """The name of the live pod of a slot, waiting for one."""
    pod = wait_for_worker(kube, namespace, job, index, attempt=attempt)
    return str(pod["metadata"]["name"])
