"""An elastic group (nnodes 1:2) that loses a pod without a word and later gains one back."""

from __future__ import annotations

import os
import signal

from .conftest import Cluster, Pod, wait_until
from .test_training import DIGITS


def training_at(pod: Pod, world_size: int, not_pid: object = None) -> bool:
    """True once the pod's worker (not the one with pid not_pid) steps at this world size."""
    beat = pod.heartbeat()
    return beat.get("world_size") == world_size and beat.get("pid") != not_pid


def test_a_silently_lost_pod_shrinks_the_group_and_a_new_one_grows_it_back(
    cluster: Cluster,
) -> None:
    # 12 epochs: the survivor has hundreds of paced steps left to train alone, enough for the
    # new pod to start and join even on a loaded machine (with 4 it could finish first).
    args = [*DIGITS, "--epochs", "12", "--min-step-seconds", "0.05", "--heartbeat-interval", "0"]
    first, frozen = (cluster.start_pod(f"pod-{i}", "1:2", args, max_restarts=5) for i in (0, 1))
    wait_until(lambda: training_at(first, 2), 120, "both pods training together")
    before = first.heartbeat()["pid"]
    # SIGSTOP: no exit, no TCP reset, no keep-alive: what the group sees of a lost node.
    os.killpg(frozen.proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: training_at(first, 1, before), 90, "the survivor training alone")
    finally:
        os.killpg(frozen.proc.pid, signal.SIGKILL)
    assert "pods of the group stopped beating; re-forming the group" in first.output()
    assert "a peer of the group is gone" in first.output()  # its worker did not wait 30 s

    alone = first.heartbeat()["pid"]
    joined = cluster.start_pod("pod-2", "1:2", args, max_restarts=5)
    wait_until(lambda: training_at(first, 2, alone), 120, "the group grown back to two")
    # Growing is orderly: the running worker checkpointed at a step boundary and left.
    assert "stopping at the next step" in first.output()
    for pod in (first, joined):
        assert pod.wait() == 0, pod.output()[-3000:]
