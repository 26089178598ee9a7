"""Local volume provisioner: hostPath PersistentVolumes for claims of `ringleader-local`.

`python -m tools.localcluster.provisioner --kubeconfig PATH --volumes-dir DIR`. Makes the default
StorageClass, then polls: a Pending claim of that class gets a PV (a directory under DIR) that is
pre-bound to it, so the controller-manager binds the pair; a Released PV it made is deleted with
its directory. Needs no root and no local nodes, so it also serves kwok-only clusters. Every
node of a local cluster runs on this machine, so a host directory is a volume all of them share
(ReadWriteMany), as a network file system would be on a real cluster.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

log = logging.getLogger("provisioner")
STORAGE_CLASS = "ringleader-local"
PROVISIONER = "ringleader.dev/local"
POLL_SECONDS = 1.0


def connect(kubeconfig: Path) -> client.ApiClient:
    """An API client for the kubeconfig's current context."""
    return config.new_client_from_config(config_file=str(kubeconfig))


def raw(response: Any) -> Any:
    """The JSON body of a call made with _preload_content=False."""
    return json.loads(response.data)


def build_storage_class() -> dict[str, Any]:
    """The default StorageClass: immediate binding, volumes deleted with their claims."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def wants_volume(claim: dict[str, Any]) -> bool:
    """A Pending, unbound claim of our class (or of no class, when none is set)."""
    spec = claim.get("spec", {})
    pending = claim.get("status", {}).get("phase", "Pending") == "Pending"
    ours = spec.get("storageClassName") in (None, STORAGE_CLASS)
    return pending and ours and not spec.get("volumeName") and not spec.get("selector")


def volume_name(claim: dict[str, Any]) -> str:
    """Deterministic, so a crash between create and bind never makes two."""
    return f"pvc-{claim['metadata']['uid']}"


def build_volume(claim: dict[str, Any], directory: Path) -> dict[str, Any]:
    """A hostPath PV of the claim's size and access modes, pre-bound to the claim."""
    meta, spec = claim["metadata"], claim["spec"]
    claim_ref = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
            "claimRef": claim_ref,
        },
    }


def is_released(volume: dict[str, Any]) -> bool:
    """A PV we made whose claim is gone and whose policy says delete."""
    ours = volume["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
    phase = volume.get("status", {}).get("phase")
    policy = volume["spec"].get("persistentVolumeReclaimPolicy")
    return ours == PROVISIONER and phase in ("Released", "Failed") and policy == "Delete"


class Provisioner:
    """Creates and deletes volumes under root."""

    def __init__(self, api_client: client.ApiClient, root: Path) -> None:
        self.core = client.CoreV1Api(api_client)
        self.storage = client.StorageV1Api(api_client)
        self.root = root

    def ensure_storage_class(self) -> None:
        """Create the StorageClass unless it exists."""
        try:
            self.storage.create_storage_class(build_storage_class())
        except ApiException as error:
            if error.status != 409:
                raise

    def _provision(self, claim: dict[str, Any]) -> None:
        directory = self.root / volume_name(claim)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o777)  # pods may run as any user
        try:
            self.core.create_persistent_volume(build_volume(claim, directory))
        except ApiException as error:
            if error.status != 409:
                raise
            return
        log.info("provisioned %s for %s/%s", directory.name,
                 claim["metadata"]["namespace"], claim["metadata"]["name"])  # fmt: skip

    def _delete(self, volume: dict[str, Any]) -> None:
        path = volume["spec"].get("hostPath", {}).get("path")
        if path and Path(path).parent == self.root:  # never outside our own directory
            shutil.rmtree(path, ignore_errors=True)
        try:
            self.core.delete_persistent_volume(volume["metadata"]["name"])
        except ApiException as error:
            if error.status != 404:
                raise
        log.info("deleted %s", volume["metadata"]["name"])

    def sync(self) -> None:
        """One pass: provision pending claims, delete released volumes."""
        claims = raw(self.core.list_persistent_volume_claim_for_all_namespaces(
            _preload_content=False
        ))["items"]  # fmt: skip
        for claim in claims:
            if wants_volume(claim):
                self._provision(claim)
        volumes = raw(self.core.list_persistent_volume(_preload_content=False))["items"]
        for volume in volumes:
            if is_released(volume):
                self._delete(volume)

    def run(self, stop: threading.Event) -> None:
        """Poll until stop is set."""
        self.ensure_storage_class()
        while not stop.wait(POLL_SECONDS):
            try:
                self.sync()
            except Exception as error:
                log.warning("provisioner pass failed: %s", error)


def main(argv: list[str] | None = None) -> int:
    """Run the provisioner until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tools.localcluster.provisioner")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--volumes-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Provisioner(connect(args.kubeconfig), args.volumes_dir.resolve()).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
