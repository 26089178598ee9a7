"""Fixtures of the integration tests beyond the session-wide ones in tests/conftest.py."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest

from tests.kube import Kube
from tools.localcluster.nodes import NODE_POOL_LABEL, build_fake_gpu_node

POOL_SIZE = 4  # two workers, their replacements, and room for a preemptor


@pytest.fixture
def pool(kube: Kube, namespace: str) -> Iterator[str]:
    """POOL_SIZE fake GPU nodes for this test only (pool label and taint: the namespace)."""
    subnet = zlib.crc32(namespace.encode()) % 250
    names = [f"{namespace}-gpu-{index}" for index in range(POOL_SIZE)]
    nodes = []
    for index, name in enumerate(names):
        node = build_fake_gpu_node(name, f"10.241.{subnet}.{10 + index}")
        node["metadata"]["labels"][NODE_POOL_LABEL] = namespace
        node["spec"] = {
            "taints": [{"key": NODE_POOL_LABEL, "value": namespace, "effect": "NoSchedule"}]
        }
        nodes.append(node)
    kube.apply(nodes, namespace)
    try:
        selector = f"{NODE_POOL_LABEL}={namespace}"
        kube.run("wait", "--for=condition=Ready", "node", "-l", selector, "--timeout=60s")
        yield namespace
    finally:
        kube.run("delete", "node", *names, "--wait=false", check=False)
