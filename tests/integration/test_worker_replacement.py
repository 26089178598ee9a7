"""Worker pods deleted in a burst on kwok nodes: each slot is filled again exactly once, under a
name of its own, and only once its predecessor is gone.

Replacements used to take the name of the pod they replaced, and kwok's delayed deletes, keyed by
pod name, hit them in bursts like this one."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import defaultdict
from typing import Any

from tests.harness import OperatorProcess
from tests.integration.test_node_loss import DELETE_DELAY
from tests.integration.test_operator import job_status, make_job, wait_for_phase, worker_pods
from tests.kube import Kube, is_live, slot_of, wait_until, worker_selector
from tools.localcluster.cluster import kubectl_binary

Obj = dict[str, Any]


class Watch:
    """Every report of some objects, in the API server's order: a kubectl watch, which lists
    them first (as ADDED) and then reports each creation, change and deletion."""

    def __init__(self, kube: Kube, namespace: str, *what: str) -> None:
        argv = [
            kubectl_binary(),
            f"--kubeconfig={kube.kubeconfig}",
            *("get", *what, "-n", namespace),
            *("--watch", "--output-watch-events", "-o", "json"),
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.events: list[tuple[str, Obj]] = []  # (ADDED | MODIFIED | DELETED, pod)
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        # -o json prints one indented document per event: decode once a whole one has come.
        decoder, text = json.JSONDecoder(), ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            text += line
            try:
                event, end = decoder.raw_decode(text.strip())
            except ValueError:
                continue
            text = text.strip()[end:]
            with self.lock:
                self.events.append((event["type"], event["object"]))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class PodWatch(Watch):
    """Every report of a job's worker pods."""

    def __init__(self, kube: Kube, namespace: str, job: str) -> None:
        super().__init__(kube, namespace, "pods", "-l", worker_selector(job))

    def reports(self) -> list[tuple[str, str, str]]:
        """(event type, slot, uid) of every report so far."""
        with self.lock:
            return [(kind, slot_of(pod), pod["metadata"]["uid"]) for kind, pod in self.events]

    def uids_by_slot(self) -> dict[str, set[str]]:
        """The pods seen in each slot: one per creation."""
        out: dict[str, set[str]] = defaultdict(set)
        for _, slot, uid in self.reports():
            out[slot].add(uid)
        return dict(out)


def test_workers_deleted_at_once_are_each_replaced_once_under_a_new_name(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    job = make_job(replicas=4, gpus=0)
    # Like a kubelet stopping containers, kwok takes 2 s to remove each deleted pod.
    job["spec"]["template"]["metadata"] = {"annotations": dict(DELETE_DELAY)}
    kube.apply(job, namespace)
    wait_for_phase(kube, namespace, "Running")
    before = {slot_of(p): p["metadata"] for p in worker_pods(kube, namespace)}
    doomed = {
        slot: before[slot]
        for slot in ("train-worker-0-a0", "train-worker-1-a0", "train-worker-3-a0")
    }
    watch = PodWatch(kube, namespace, "train")
    job_watch = Watch(kube, namespace, "dtj", "train")
    try:
        wait_until(lambda: len(watch.uids_by_slot()) == 4, what="the watch listing the workers")
        names = [meta["name"] for meta in doomed.values()]
        kube.run("delete", "pod", *names, "-n", namespace, "--wait=false")

        def replaced() -> list[Obj] | None:
            live = [p for p in worker_pods(kube, namespace) if is_live(p)]
            fresh = {p["metadata"]["uid"] for p in live}.isdisjoint(
                meta["uid"] for meta in doomed.values()
            )
            status = job_status(kube, namespace)
            running = (status.get("phase"), status.get("workers")) == ("Running", "4/4")
            return live if fresh and running and len(live) == 4 else None

        live = wait_until(replaced, timeout=90, what="the deleted workers replaced, Running 4/4")
        time.sleep(5)  # a second pod for a slot, had one been made, would be reported by now
        reports, made = watch.reports(), watch.uids_by_slot()
        with job_watch.lock:
            versions = {job["metadata"]["resourceVersion"] for _, job in job_watch.events}
    finally:
        watch.stop()
        job_watch.stop()
    # The job's status follows what changed, at most three writes a deleted pod (it leaves, its
    # slot is filled, its replacement is ready) and the phase there and back; here 6 to 8. Not
    # a write for every report of every pod.
    assert len(versions) - 1 <= 3 * len(doomed) + 2, len(versions)
    created = {slot: len(uids) for slot, uids in made.items()}
    assert created == {
        "train-worker-0-a0": 2,  # the one deleted and its replacement
        "train-worker-1-a0": 2,
        "train-worker-2-a0": 1,  # untouched
        "train-worker-3-a0": 2,
    }, reports
    now = {slot_of(p): p["metadata"] for p in live}
    assert now["train-worker-2-a0"]["uid"] == before["train-worker-2-a0"]["uid"]
    for slot, old in doomed.items():
        assert now[slot]["name"] != old["name"]  # a name of its own
        gone = reports.index(("DELETED", slot, old["uid"]))
        made_at = reports.index(("ADDED", slot, now[slot]["uid"]))
        assert gone < made_at, f"{slot}: its replacement was made before it was gone"
    status = job_status(kube, namespace)
    assert (status["restartAttempt"], status.get("restarts", 0)) == (0, 0)  # a user's deletion
