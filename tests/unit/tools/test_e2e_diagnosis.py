"""What an e2e wait that gives up says of the nodes and pods it found (tests/e2e/diagnosis.py)."""

from __future__ import annotations

from typing import Any

from tests.e2e.diagnosis import _pod, _unwell


def node(
    name: str, ready: str = "True", disk: str = "False", taints: list[str] | None = None
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready}, {"type": "DiskPressure", "status": disk}]
    return {
        "metadata": {"name": name},
        "spec": {"taints": [{"key": key, "effect": "NoSchedule"} for key in taints or []]},
        "status": {"conditions": conditions},
    }


def test_a_well_node_is_not_mentioned() -> None:
    assert _unwell(node("local-0")) == ""


def test_a_node_under_disk_pressure_is_named_with_its_taint() -> None:
    pressed = node("local-1", disk="True", taints=["node.kubernetes.io/disk-pressure"])
    assert _unwell(pressed) == "local-1 DiskPressure+taint node.kubernetes.io/disk-pressure"


def test_a_node_not_ready_says_so_first() -> None:
    assert _unwell(node("local-0", ready="Unknown")) == "local-0 Ready=Unknown"


def test_a_pod_says_why_it_is_not_running() -> None:
    pod = {
        "metadata": {"name": "job-worker-0"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "message": "0/3 nodes are available"}
            ],
            "containerStatuses": [
                {
                    "name": "trainer",
                    "state": {"waiting": {"reason": "ErrImageNeverPull"}},
                    "restartCount": 2,
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
                }
            ],
        },
    }
    assert _pod(pod) == (
        "job-worker-0 Pending unscheduled: 0/3 nodes are available"
        " trainer waiting: ErrImageNeverPull trainer restarts 2, last Error exit 1"
    )
