"""Benchmark: worker pods deleted at once, one per job, after a burst of jobs on kwok nodes.

Run: .venv/bin/python -m bench.deletion_burst [--jobs 200] [--workers 8] [--delete 50]
    [--delete-delay 2s] [--bursts 1] [--operator-option=--workers=16 ...]
Applies the jobs as bench.operator_burst does (kwok removes a deleted pod after --delete-delay,
as a kubelet stopping its containers would; at once without it), waits until all run, then
deletes one worker of `--delete` jobs in one request each, from 16 threads at once, and watches
the namespace's pods until every deleted worker has a Running replacement and no pod was created
for SETTLE_SECONDS. Prints: pods created per deleted pod, time to each replacement that stayed
Running (p50, p99, max) from the start of the burst and from its own pod's deletion, the time
until the last pod was created, and the operator's writes in that window by verb and kind (its
own counter, and the API server's audit log: bench.apiwrites), and the CPU seconds of each
process. With --bursts N, N bursts one after another (worker 1 of each job, then worker 2...),
each once the one before settled, then their times pooled. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config, watch

from bench.apiwrites import read_writes
from bench.cpu import cpu_by_process
from bench.operator_burst import (
    METRICS_PORT,
    NAMESPACE,
    measure_burst,
    operator_on_kwok,
    print_audited,
    writes,
)
from ringleader import constants as c
from tools.localcluster.layout import Layout

SETTLE_SECONDS = 10.0
DELETERS = 16  # threads sending the deletions: "at once", as far as one client goes
DELETE_DELAY_ANNOTATION = "pod-delete.stage.ringleader.dev/delay"  # tools/localcluster/stages.yaml
TIMEOUT_SECONDS = 300.0
Slot = tuple[str, str]  # (job, replica index)
FROM_DELETION = "to the replacement that stayed Running, from its pod's deletion"


@dataclass
class PodLog:
    """What the watch saw after the deletions: pods created, and when each became Running."""

    created: dict[str, float] = field(default_factory=dict)  # uid -> time seen first
    running: dict[str, float] = field(default_factory=dict)  # uid -> time seen Running
    slot_of: dict[str, Slot] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)  # uids deleted or being deleted
    removed: dict[str, float] = field(default_factory=dict)  # uid -> time seen DELETED
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, pod: Any, seen: float, known: set[str]) -> None:
        """One watch event."""
        meta, uid = pod.metadata, pod.metadata.uid
        labels = meta.labels or {}
        if labels.get(c.LABEL_ROLE) != c.ROLE_WORKER:
            return
        with self.lock:
            self.slot_of[uid] = _slot(pod)
            if uid not in known:
                self.created.setdefault(uid, seen)
            if kind == "DELETED":
                self.removed.setdefault(uid, seen)
            if kind == "DELETED" or meta.deletion_timestamp:
                self.gone.add(uid)
            elif pod.status.phase == "Running":
                self.running.setdefault(uid, seen)

    def removals(self, known: set[str]) -> dict[Slot, float]:
        """When each pod that existed before the deletions was seen DELETED, by its slot."""
        with self.lock:
            return {self.slot_of[u]: t for u, t in self.removed.items() if u in known}

    def stages(self, removed: dict[Slot, float]) -> dict[str, list[float]]:
        """For each slot's replacement that stayed: seconds from the old pod's removal (its
        DELETED event, `removed`) to the new pod's creation, and from creation to Running."""
        with self.lock:
            out: dict[str, list[float]] = {"removed -> created": [], "created -> Running": []}
            for uid, since in self.running.items():
                slot = self.slot_of[uid]
                if slot in removed and uid in self.created and uid not in self.gone:
                    out["removed -> created"].append(self.created[uid] - removed[slot])
                    out["created -> Running"].append(since - self.created[uid])
            return out

    def replaced(self, slots: set[Slot]) -> dict[Slot, float]:
        """For each slot, when its newest pod still standing became Running."""
        with self.lock:
            found: dict[Slot, float] = {}
            for uid, since in self.running.items():
                slot = self.slot_of[uid]
                if slot in slots and uid in self.created and uid not in self.gone:
                    found[slot] = max(found.get(slot, 0.0), since)
            return found


def _watch(
    api: client.CoreV1Api, watcher: watch.Watch, version: str, log: PodLog, known: set[str]
) -> None:
    """Record the namespace's pod events until the watcher is stopped. No timeout_seconds: with
    one, the client takes a watch the API server ended for its own end, and the API server ends
    a watcher it finds slow to read (this one parses each pod into a model): the burst's later
    creations went unseen and the burst looked unsettled. Without, the client watches again
    from the last version it saw."""
    stream = watcher.stream(api.list_namespaced_pod, NAMESPACE, resource_version=version)
    try:
        for event in stream:
            log.record(event["type"], event["object"], time.monotonic(), known)
    except client.ApiException as error:  # 410: this run's figures would be missing events
        print(f"the bench's watch of pods failed, events missed: {error.status} {error.reason}")
    except urllib3.exceptions.HTTPError:
        pass  # the cluster is going away at the end of the run


def _victims(pods: list[Any], count: int, index: int) -> list[Any]:
    """Worker `index` of the first `count` jobs (job-0, job-1, ...)."""
    standing = (p for p in pods if not p.metadata.deletion_timestamp)
    ones = [
        p for p in standing if (p.metadata.labels or {}).get(c.LABEL_REPLICA_INDEX) == str(index)
    ]
    ones.sort(key=lambda p: int(p.metadata.labels[c.LABEL_JOB_NAME].removeprefix("job-")))
    return ones[:count]


def _settle(log: PodLog, slots: set[Slot], started: float) -> float:
    """Wait until every slot is replaced and nothing was created for SETTLE_SECONDS."""
    while time.monotonic() - started < TIMEOUT_SECONDS:
        time.sleep(0.5)
        with log.lock:
            last = max(log.created.values(), default=started)
        if len(log.replaced(slots)) == len(slots) and time.monotonic() - last > SETTLE_SECONDS:
            return last - started
    print(f"not settled after {TIMEOUT_SECONDS:.0f} s")
    return TIMEOUT_SECONDS


def measure_deletions(
    layout: Layout, count: int, operator_pid: int, index: int = 1
) -> dict[str, list[float]]:
    """Delete worker `index` of `count` jobs at once and print what it took to replace them;
    return the seconds each took, from its pod's deletion and by stage."""
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(layout.kubeconfig)))
    everything = api.list_namespaced_pod(NAMESPACE)
    known = {p.metadata.uid for p in everything.items}
    victims = _victims(everything.items, count, index)
    log, watcher = PodLog(), watch.Watch()
    version = everything.metadata.resource_version
    threading.Thread(target=_watch, args=(api, watcher, version, log, known), daemon=True).start()
    before, cpu_before = writes(METRICS_PORT), cpu_by_process(layout, operator_pid)
    since = datetime.now(UTC)
    started = time.monotonic()
    deleted = _delete_at_once(api, victims)
    print(f"the {count} deletions were answered within {max(deleted.values()) - started:.2f} s")
    last_created = _settle(log, set(deleted), started)
    watcher.stop()  # at its next event: a later burst's watch must not share the CPU with it
    _print_cpu(cpu_before, cpu_by_process(layout, operator_pid), time.monotonic() - started)
    samples = {FROM_DELETION: _report(log, deleted, started, last_created, count)}
    removed = log.removals(known)
    print(f"old pods removed (DELETED seen) within {max(removed.values()) - started:.2f} s")
    for stage, times in log.stages(removed).items():
        _print_times(stage, sorted(times), count)
        samples[stage] = times
    after = writes(METRICS_PORT)
    delta = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    print(f"operator writes meanwhile: {json.dumps(delta, sort_keys=True)}")
    print_audited("operator writes meanwhile", read_writes(layout.audit_log, since))
    return samples


def _print_cpu(before: dict[str, float], after: dict[str, float], seconds: float) -> None:
    used = {name: round(after[name] - before.get(name, 0.0), 1) for name in after}
    print(f"CPU seconds by process in those {seconds:.1f} s (until settled): {used}")


def _slot(pod: Any) -> Slot:
    labels = pod.metadata.labels
    return labels[c.LABEL_JOB_NAME], labels[c.LABEL_REPLICA_INDEX]


def _delete_at_once(api: client.CoreV1Api, victims: list[Any]) -> dict[Slot, float]:
    """Delete the pods from DELETERS threads at once; when each deletion was answered."""

    def delete(pod: Any) -> tuple[Slot, float]:
        api.delete_namespaced_pod(pod.metadata.name, NAMESPACE)
        return _slot(pod), time.monotonic()

    with ThreadPoolExecutor(DELETERS) as pool:
        return dict(pool.map(delete, victims))


def _report(
    log: PodLog, deleted: dict[Slot, float], started: float, last: float, count: int
) -> list[float]:
    replaced = log.replaced(set(deleted))
    created = len(log.created)
    per_pod = created / count
    print(f"{count} worker pods deleted at once: {created} pods created ({per_pod:.2f} a pod)")
    print(f"the last pod was created {last:.1f} s after the deletions began")
    since_burst = sorted(t - started for t in replaced.values())
    since_own = sorted(t - deleted[slot] for slot, t in replaced.items())
    _print_times("to the replacement that stayed Running, from the burst began", since_burst, count)
    _print_times(FROM_DELETION, since_own, count)
    return since_own


def _print_times(what: str, times: list[float], count: int) -> None:
    """p50, p99 and max of sorted times, if any."""
    if times:
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        p50 = statistics.median(times)
        print(
            f"{what}: p50 {p50:.2f} s, p99 {p99:.2f} s, max {times[-1]:.2f} s "
            f"({len(times)} of {count})"
        )


def run(
    jobs: int, workers: int, delete: int, delete_delay: str, *, bursts: int, options: list[str]
) -> None:
    """Start a cluster and the operator (with these options), apply the jobs, delete bursts of
    their workers (worker 1 of each job, then worker 2...), one after another settled."""
    with operator_on_kwok(jobs * (workers + 1) * 2, *options) as (cluster, operator):
        delay = {DELETE_DELAY_ANNOTATION: delete_delay} if delete_delay else None
        measure_burst(cluster, jobs, workers, delay)
        # Past the status write of every job whose trainers report nothing (kwok's pods serve no
        # progress), a minute after its workers started: not the bursts' doing.
        time.sleep(c.NOT_REPORTED_AFTER_SECONDS + 10)
        pooled: dict[str, list[float]] = {}
        for burst in range(bursts):
            index = 1 + burst % (workers - 1)
            print(f"-- burst {burst + 1} of {bursts}: worker {index} of {delete} jobs")
            for what, times in measure_deletions(
                cluster.layout, delete, operator.pid, index
            ).items():
                pooled.setdefault(what, []).extend(times)
        if bursts > 1:
            print(f"-- the {bursts} bursts together:")
            for what, times in pooled.items():
                _print_times(what, sorted(times), delete * bursts)


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--delete", type=int, default=50)
    parser.add_argument("--delete-delay", default="", help="e.g. 2s (kwok's pod-delete stage)")
    parser.add_argument("--bursts", type=int, default=1, help="one after another, settled")
    parser.add_argument(
        "--operator-option", action="append", default=[], help="e.g. --workers=16 (repeatable)"
    )
    args = parser.parse_args()
    when = f"after {args.delete_delay}" if args.delete_delay else "at once"
    print(f"kwok removes a deleted pod {when}; operator options: {args.operator_option}")
    run(
        args.jobs,
        args.workers,
        args.delete,
        args.delete_delay,
        bursts=args.bursts,
        options=args.operator_option,
    )


if __name__ == "__main__":
    main()
