"""Real-node tests: the nodes are the session's (tests/conftest.py `local_nodes`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import LocalNodes
from tests.kube import Kube, wait_until
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL


@pytest.fixture(scope="session")
def base_image(local_nodes: LocalNodes) -> str:
    """Debian 12 with Python, on every real node."""
    return local_nodes.image("base")


SLEEP = ["python3", "-c", "import time; time.sleep(3600)"]


def pod(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    """A pod of one container `main` on a real node (not kwok's), never pulling its image."""
    container = {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {
            "nodeSelector": {NODE_POOL_LABEL: LOCAL_POOL},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            **spec,
        },
    }


def wait_ready(kube: Kube, namespace: str, *names: str, timeout: float = 60) -> None:
    """Until every named pod is Ready."""
    pods = [f"pod/{name}" for name in names]
    kube.run("wait", "-n", namespace, "--for=condition=Ready", *pods, f"--timeout={timeout}s")


def terminated(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    """The main container's terminated state, once it has one."""

    def state() -> dict[str, Any] | None:
        statuses = kube.get("pod", name, namespace).get("status", {}).get("containerStatuses")
        found: dict[str, Any] | None = (statuses or [{}])[0].get("state", {}).get("terminated")
        return found

    return wait_until(state, timeout=90, what=f"{name} terminated")
