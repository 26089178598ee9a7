"""The latest bodies of jobs and of their children, as the watches delivered them.

Written from the event loop (the watches) and from the reconcile worker threads (what a reconcile
has just written, until the watch reports it); read from both, and by the progress poller. Every
method holds one lock, so a read never sees a half-made change and a compare-and-replace of a job
body cannot interleave with the watch replacing that body.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ringleader import constants as c
from ringleader import pods

Obj = dict[str, Any]
Key = tuple[str, str]  # namespace, job name
ChildId = tuple[str, str]  # kind, name
# The children a relist lists (KubeApi.list_children); a PodGroup, say, is never dropped by one.
LISTED_KINDS = frozenset({"Pod", "Service", "PersistentVolumeClaim"})
FORCE_DELETED_MEMORY = 10_000  # pods force-deleted whose DELETED report has yet to come


@dataclass(frozen=True)
class Snapshot:
    """The bodies a cache held at one moment (the very objects: compared by identity)."""

    jobs: dict[Key, Obj]
    children: dict[tuple[Key, ChildId], Obj]


# What of a pod's spec the decisions read: its node (lost nodes, stragglers), its containers'
# names (pods.exited_cleanly) and the group size its workers were started with
# (lifecycle._nnodes_of reads PET_NNODES). The rest (the env contract, volumes, security
# context, tolerations) is more than half of a worker pod's body.
POD_ENV_READ = frozenset({c.ENV_PET_NNODES})


def slim(body: Obj) -> Obj:
    """The body as far as decisions read it, its short strings shared: without
    `metadata.managedFields` (who last wrote each field) and, for a pod, with only the spec
    fields above. The cache holds every job's pods: at 1,000 jobs of 8 workers, whole bodies
    were most of the operator's memory. A copy, always: the caller's body is left as it is."""
    metadata = body.get("metadata")
    slimmed = body
    if isinstance(metadata, dict) and "managedFields" in metadata:
        kept = {k: v for k, v in metadata.items() if k != "managedFields"}
        slimmed = {**slimmed, "metadata": kept}
    # The kind named, not pods.is_pod (which takes a body without one for a pod): jobs come
    # here too.
    if body.get("kind") == "Pod" and isinstance(body.get("spec"), dict):
        slimmed = {**slimmed, "spec": _pod_spec_read(body["spec"])}
    shared: Obj = _shared(slimmed)
    return shared


# Strings up to this long are held once for all bodies (sys.intern): keys, labels, names,
# phases, uids and timestamps repeat across a job's pods and the jobs, and every watch event
# parses them anew. It halves what a held pod takes (8.8 KiB of Python objects to 3.8).
SHARED_STRING_LENGTH = 64


def _shared(value: Any) -> Any:
    """A copy of a JSON value with its keys and short strings interned."""
    if isinstance(value, dict):
        return {sys.intern(key): _shared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared(item) for item in value]
    if type(value) is str and len(value) <= SHARED_STRING_LENGTH:
        return sys.intern(value)
    return value


def _pod_spec_read(spec: Obj) -> Obj:
    containers = [
        {"name": container.get("name"), "env": _env_read(container)}
        for container in spec.get("containers") or []
    ]
    node = {"nodeName": spec["nodeName"]} if "nodeName" in spec else {}
    return {**node, "containers": containers}


def _env_read(container: Obj) -> list[Obj]:
    return [var for var in container.get("env") or [] if var.get("name") in POD_ENV_READ]


def job_key_of_child(child: Mapping[str, Any]) -> Key | None:
    """(namespace, job name) of the job a child belongs to, from its labels."""
    job_name = pods.labels(child).get(c.LABEL_JOB_NAME)
    namespace = (child.get("metadata") or {}).get("namespace")
    return (str(namespace), job_name) if job_name and namespace else None


def _replaced_since(report: Obj, held: Obj | None) -> bool:
    """Whether a report is of an object older than the one held under its name (the rendezvous
    pod replaced by one of the same name; a worker's replacement has a name of its own). kopf
    hands over the reports of two objects in no set order (one stream per uid), but every report
    of the old one has a lower resourceVersion than the new one's creation: a name is free only
    once its object is gone."""
    uid, held_uid = pods.uid_of(report), pods.uid_of(held or {})
    if uid is None or held_uid is None or uid == held_uid:
        return False
    return _version(report) < _version(held or {})


def _version(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # not etcd's integers: no order known, the report is taken
        return 0


class Cache:
    """Job bodies by key, and each job's children by (kind, name)."""

    def __init__(self) -> None:
        self._jobs: dict[Key, Obj] = {}
        self._children: dict[Key, dict[ChildId, Obj]] = defaultdict(dict)
        # The uids of pods force-deleted, until the watch reports them deleted: the reports of
        # them still on their way (the deletion's own MODIFIED among them) must not bring them
        # back. Oldest first, bounded, should a DELETED report never come.
        self._force_deleted: dict[str, None] = {}
        self._lock = threading.Lock()

    def put_job(self, body: Obj) -> Key:
        """Store (or replace) a job body; return its key."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self._lock:
            self._jobs[key] = slim(body)
        return key

    def forget_job(self, key: Key) -> None:
        """The job is gone: drop it and its children."""
        with self._lock:
            self._jobs.pop(key, None)
            self._children.pop(key, None)

    def put_child(
        self, body: Obj, deleted: bool = False, only_if_absent: bool = False
    ) -> Key | None:
        """Store, replace or drop a child; return its job's key."""
        key = job_key_of_child(body)
        if key is None:
            return None
        body = slim(body)
        child_id = (body["kind"], body["metadata"]["name"])
        uid = pods.uid_of(body)
        with self._lock:
            children = self._children[key]
            if uid in self._force_deleted:
                if deleted:
                    del self._force_deleted[uid]
            elif deleted:
                # Only the object the report is about: the same name may already be held by its
                # replacement (created by us, or reported by the watch).
                if uid is None or pods.uid_of(children.get(child_id) or {}) == uid:
                    children.pop(child_id, None)
            elif only_if_absent:  # what we made: never over what the watch said of it since
                held = children.get(child_id)
                if held is None or _replaced_since(held, body):
                    children[child_id] = body
            elif not _replaced_since(body, children.get(child_id)):
                children[child_id] = body
        return key

    def forget_pod(self, key: Key, name: str) -> None:
        """A pod force-deleted: gone at once, though the watch has yet to say so (and may
        report it changed meanwhile)."""
        with self._lock:
            pod = self._children.get(key, {}).pop(("Pod", name), None)
            if pod is not None and (uid := pods.uid_of(pod)):
                self._force_deleted[uid] = None
                while len(self._force_deleted) > FORCE_DELETED_MEMORY:
                    del self._force_deleted[next(iter(self._force_deleted))]

    def snapshot(self) -> Snapshot:
        """Every body held now, by job key and by child: what a relist may later drop."""
        with self._lock:
            children = {
                (key, child_id): body
                for key, held in self._children.items()
                for child_id, body in held.items()
            }
            return Snapshot(dict(self._jobs), children)

    def drop_unlisted(
        self,
        before: Snapshot,
        jobs: set[Key],
        children: set[tuple[Key, ChildId]],
        namespaces: set[str] | None = None,
        kinds: frozenset[str] = LISTED_KINDS,
    ) -> set[Key]:
        """Drop what a listing (of `namespaces`, None: all; children of `kinds`), begun after
        `before` was taken, did not find: only bodies held unchanged since then (a newer one came
        from a watch or a write after the listing began, and may be missing from it for that
        reason). Returns the jobs whose state changed."""
        changed = set()

        def listed(key: Key) -> bool:
            return namespaces is None or key[0] in namespaces

        with self._lock:
            for key, body in before.jobs.items():
                if listed(key) and key not in jobs and self._jobs.get(key) is body:
                    del self._jobs[key]
                    self._children.pop(key, None)
                    changed.add(key)
            for (key, child_id), body in before.children.items():
                held = self._children.get(key, {})
                if not listed(key) or child_id[0] not in kinds or (key, child_id) in children:
                    continue
                if held.get(child_id) is body:
                    del held[child_id]
                    changed.add(key)
        return changed

    def job(self, key: Key) -> Obj | None:
        """The job's latest body, if it exists."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[tuple[Key, Obj]]:
        """Every job's key and latest body."""
        with self._lock:
            return list(self._jobs.items())

    def children(self, key: Key) -> list[Obj]:
        """The job's children."""
        with self._lock:
            return list(self._children.get(key, {}).values())

    def keys_with_pods_on(self, node: str) -> list[Key]:
        """The jobs with a pod bound to this node."""
        with self._lock:
            return [
                key
                for key, children in self._children.items()
                if any(pods.node_of(child) == node for child in children.values())
            ]

    def live_uids(self) -> set[str]:
        """The uids of every child: what per-pod memory may keep."""
        with self._lock:
            return {
                uid
                for children in self._children.values()
                for child in children.values()
                if (uid := pods.uid_of(child))
            }

    def record_status_write(self, key: Key, read: Obj, written: Obj) -> None:
        """A status patch made on the body `read` gave `written` (the API server's answer):
        until the watch reports it, the cache holds it, so the next pass decides from it and
        names its resourceVersion. A newer body the watch delivered meanwhile is never
        replaced (the patch named read's version: the watch's body either is the write or
        follows it)."""
        with self._lock:
            if self._jobs.get(key) is read:
                self._jobs[key] = slim(written)
