"""The local volume provisioner's pure parts: which claims it serves, the volumes it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.localcluster import provisioner


def _claim(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "ckpt", "namespace": "ns", "uid": "u-1"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "2Gi"}},
                 **spec},
        "status": {"phase": "Pending"},
    }  # fmt: skip


def test_a_pending_claim_of_our_class_or_none_gets_a_pre_bound_volume_of_its_size() -> None:
    assert provisioner.wants_volume(_claim(storageClassName="ringleader-local"))
    assert provisioner.wants_volume(_claim())
    assert not provisioner.wants_volume(_claim(storageClassName="other"))
    assert not provisioner.wants_volume(_claim(volumeName="pv-1"))
    volume = provisioner.build_volume(_claim(), Path("/v/pvc-u-1"))
    spec = volume["spec"]
    assert spec["capacity"] == {"storage": "2Gi"}
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["claimRef"]["uid"] == "u-1"
    assert spec["hostPath"]["path"] == "/v/pvc-u-1"


def test_only_our_released_volumes_are_deleted() -> None:
    volume = provisioner.build_volume(_claim(), Path("/v/pvc-u-1"))
    volume["status"] = {"phase": "Released"}
    assert provisioner.is_released(volume)
    volume["metadata"]["annotations"] = {}
    assert not provisioner.is_released(volume)
