"""Volumes on real nodes: the local provisioner's claims are shared across nodes; /dev/shm."""

from __future__ import annotations

from typing import Any

from tests.harness import LocalNodes
from tests.kube import Kube
from tests.realnodes.conftest import pod, terminated


def _claim(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def test_a_claim_is_provisioned_and_shared_by_pods_on_different_nodes_as_non_root(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]
    mount = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    non_root = {"runAsUser": 1000, "runAsNonRoot": True}
    write = "open('/data/note', 'w').write('from writer')"
    writer = pod(
        "writer", base_image, ["python3", "-c", write], nodeName=local_nodes.names[0],
        volumes=volumes, container=mount, securityContext=non_root,
    )  # fmt: skip
    kube.apply([_claim("shared"), writer], namespace)
    assert terminated(kube, namespace, "writer")["exitCode"] == 0
    pvc = kube.get("pvc", "shared", namespace=namespace)
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == "ringleader-local"
    reader = pod(
        "reader", base_image, ["python3", "-c", "print(open('/data/note').read())"],
        nodeName=local_nodes.names[1], volumes=volumes, container=mount, securityContext=non_root,
    )  # fmt: skip
    kube.apply(reader, namespace)
    assert terminated(kube, namespace, "reader")["exitCode"] == 0
    assert kube.run("logs", "-n", namespace, "reader").strip() == "from writer"


def test_a_memory_empty_dir_at_dev_shm_is_a_tmpfs_of_its_size_limit(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    script = (
        "import os; s = os.statvfs('/dev/shm'); "
        "print([l.split()[2] for l in open('/proc/self/mounts') if ' /dev/shm ' in l][-1], "
        "s.f_blocks * s.f_frsize)"
    )
    volumes = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    mount = {"volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]}
    kube.apply(
        pod("shm", base_image, ["python3", "-c", script], volumes=volumes, container=mount),
        namespace,
    )
    assert terminated(kube, namespace, "shm")["exitCode"] == 0
    kind, size = kube.run("logs", "-n", namespace, "shm").split()
    assert (kind, int(size)) == ("tmpfs", 64 << 20)
