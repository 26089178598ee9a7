"""A small kubectl wrapper for tests: tests act on the cluster the way users do."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
