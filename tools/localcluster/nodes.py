"""Fake GPU nodes that kwok keeps Ready: shaped like 8-GPU training machines."""

from __future__ import annotations

from typing import Any

FAKE_NODE_COUNT = 4
GPUS_PER_NODE = 8
NODE_POOL_LABEL = "ringleader.dev/node-pool"


def build_fake_gpu_node(name: str, internal_ip: str) -> dict[str, Any]:
    """A Node object kwok manages (annotation kwok.x-k8s.io/node=fake)."""
    resources = {
        "cpu": "96",
        "memory": "1152Gi",
        "ephemeral-storage": "2Ti",
        "pods": "110",
        "nvidia.com/gpu": str(GPUS_PER_NODE),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "fake-8xgpu",
                "nvidia.com/gpu.present": "true",
                NODE_POOL_LABEL: "kwok",
                "type": "kwok",
            },
        },
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def build_fake_gpu_nodes(count: int = FAKE_NODE_COUNT) -> list[dict[str, Any]]:
    """The default set of fake nodes: kwok-gpu-0 … kwok-gpu-(count-1)."""
    return [
        build_fake_gpu_node(f"kwok-gpu-{index}", f"10.240.0.{10 + index}") for index in range(count)
    ]
