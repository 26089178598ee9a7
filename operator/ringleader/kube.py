"""The only module that talks to the Kubernetes API (apiclient's JSON, from worker threads).

Errors are handled here once: 404 on delete and 409 on create mean the cluster already is as
wanted; 429 and 5xx become RetryableError so the caller requeues with backoff.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3

from ringleader import constants as c
from ringleader.apiclient import MERGE_PATCH, ApiError, RestClient, load_credentials
from ringleader.eventsender import EventSender, Occurrence
from ringleader.eventseries import EventSeries, SeriesKey, Write
from ringleader.metrics import API_ERRORS, API_WRITES

Obj = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger("ringleader.kube")


class RetryableError(RuntimeError):
    """The API server is overloaded or failing; try the reconcile again later."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        # What the same plan wrote before it (execute_plan fills them in): the cache must know
        # the workers it created, or the next pass would fill their slots again.
        self.created: list[Obj] = []
        self.written_job: Obj | None = None


class Conflict(RetryableError):
    """A write lost a race (409): the object changed since it was read. Routine, not a fault."""


class CreationRefused(RuntimeError):
    """The API server refused to create a child: admission (a quota, PodSecurity, a LimitRange,
    a webhook), validation, or a name another object already holds. `lasting` when trying again
    cannot help; a quota may free up."""

    def __init__(self, kind: str, name: str, reason: str, message: str, lasting: bool) -> None:
        super().__init__(f"create {kind} {name}: {reason}: {message}")
        self.kind, self.name, self.reason, self.message = kind, name, reason, message
        self.lasting = lasting
        # What the same plan wrote before it (execute_plan fills them in): the cache must know.
        self.created: list[Obj] = []
        self.written_job: Obj | None = None


CRD_TERMINATING = "custom resource definition is terminating"  # in a 403 while a CRD goes
QUOTA_MARKER = "exceeded quota"  # in a 403 from the ResourceQuota admission plugin


def refusal_of(error: ApiError, kind: str, name: str) -> CreationRefused | None:
    """The refusal an API error on create stands for; None for other errors."""
    if error.status not in (400, 403, 422):
        return None
    message = _status_message(error)
    quota = error.status == 403 and QUOTA_MARKER in message
    reason = "QuotaExceeded" if quota else "Forbidden" if error.status == 403 else "Invalid"
    return CreationRefused(kind, name, reason, message, lasting=not quota)


def status_body(error: ApiError) -> Obj:
    """The API server's Status body of an error ({} when it sent none, or not JSON)."""
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _status_message(error: ApiError) -> str:
    """The message of the API server's Status body (else its HTTP reason)."""
    return str(status_body(error).get("message") or error.reason or error.status)


def _api_going(error: ApiError) -> bool:
    """A custom resource's API not served (404), or its CRD being deleted (403)."""
    return error.status == 404 or CRD_TERMINATING in _status_message(error)


# Seconds to connect, and to wait for an answer: without them a request lost in a restarting API
# server or a broken connection would hold a reconcile worker for good.
REQUEST_TIMEOUT = (5.0, 30.0)
# Two dry runs per admission review must fit into the webhook's 10 s.
DRY_RUN_TIMEOUT = (2.0, 4.0)
# What the operator's requests say they come from (kopf's own watches say kopf/<version>).
USER_AGENT = "ringleader-operator"
WATCH_SECONDS = 300  # the server ends a watch after this; it is started again from where it was


# Items a page of a watch's listing holds: a listing of thousands of pods is never held at once.
LIST_PAGE_SIZE = 500


@dataclass(frozen=True)
class Selection:
    """Objects of one resource, for a watch: its apiVersion ("v1" for the core group) and
    plural, a namespace (None: all), and a label selector ("": every object)."""

    api_version: str
    plural: str
    namespace: str | None
    selector: str

    def path(self) -> str:
        """The resource's path (its objects in the namespace, or in all)."""
        if self.api_version == "v1":
            return core_path(self.plural, self.namespace)
        return apis_path(self.api_version, self.plural, self.namespace)


def connect(kubeconfig: str | None = None) -> RestClient:
    """A client of the API server from a kubeconfig path, $KUBECONFIG, or the in-cluster service
    account, with REQUEST_TIMEOUT on every request that sets none."""
    # The API server's audit log and metrics tell the operator's requests apart by its agent.
    return RestClient(load_credentials(kubeconfig), USER_AGENT, REQUEST_TIMEOUT)


def _call(verb: str, kind: str, fn: Callable[[], T], benign: int | None = None) -> T | None:
    """Run one API call; None when it failed with the benign status (404 or 409)."""
    try:
        result = fn()
    except urllib3.exceptions.HTTPError as error:
        # No answer at all (refused, reset, timed out): the API server restarting, a network
        # fault. Like a 5xx, worth trying again later; nothing to say it failed for good.
        API_ERRORS.labels(status="none").inc()
        raise RetryableError(f"{verb} {kind}: no answer: {type(error).__name__}") from error
    except ApiError as error:
        API_ERRORS.labels(status=str(error.status)).inc()
        if benign is not None and error.status == benign:
            return None
        if error.status == 403 and "NamespaceTerminating" in (error.body or ""):
            return None  # the namespace and everything in it, the job too, are going away
        # Throttled, failing, or a write that lost a race (409): the next pass, from what the
        # watches show by then, decides again.
        if error.status == 409:
            raise Conflict(f"{verb} {kind}: 409 {_status_message(error)}") from error
        if error.status == 429 or error.status >= 500:
            raise RetryableError(f"{verb} {kind}: {error.status} {error.reason}") from error
        raise
    if verb not in ("get", "list"):
        API_WRITES.labels(verb=verb, kind=kind).inc()
        _exit_if_fault_injected()
    return result


def _pages(kind: str, fetch: Callable[[str | None], Obj]) -> list[Obj]:
    """Every item of a paged list call (fetch(token) gives one page, a List object)."""
    items: list[Obj] = []
    token: str | None = None
    while True:
        page = _call("list", kind, functools.partial(fetch, token)) or {}
        items += page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


def _names(meta: Obj) -> Obj:
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": dict(meta.get("labels") or {}),
    }


# The core kinds the operator makes, by the resource names of their paths.
CORE_RESOURCES = {
    "Pod": "pods",
    "Service": "services",
    "PersistentVolumeClaim": "persistentvolumeclaims",
}


def core_path(resource: str, namespace: str | None = None, name: str | None = None) -> str:
    """/api/v1/[namespaces/<namespace>/]<resource>[/<name>]."""
    where = f"/namespaces/{_quote(namespace)}" if namespace else ""
    return f"/api/v1{where}/{resource}" + (f"/{_quote(name)}" if name else "")


def apis_path(
    group_version: str,
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """/apis/<group>/<version>/[namespaces/<namespace>/]<resource>[/<name>[/<subresource>]]."""
    where = f"/namespaces/{_quote(namespace)}" if namespace else ""
    path = f"/apis/{group_version}{where}/{resource}"
    if name:
        path += f"/{_quote(name)}" + (f"/{subresource}" if subresource else "")
    return path


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _exit_if_fault_injected() -> None:
    """Die right after the Nth write when RINGLEADER_FAULT_EXIT_AFTER_WRITES=N (tests only).

    Lets the tests kill the operator between any two of its writes and check that a fresh
    operator converges from whatever state that left.
    """
    limit = os.environ.get("RINGLEADER_FAULT_EXIT_AFTER_WRITES")
    if limit is None:
        return
    global _writes_done  # noqa: PLW0603  (a process-wide count is exactly what is wanted)
    _writes_done += 1
    if _writes_done >= int(limit):
        os._exit(FAULT_EXIT_CODE)


FAULT_EXIT_CODE = 86
_writes_done = 0


class KubeApi:
    """The calls the reconcile loop needs, nothing more."""

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest
        self.event_series = EventSeries()
        self.event_sender: EventSender | None = None  # the operator's; tests write at once

    def create(self, obj: Obj) -> Obj | None:
        """Create a Pod, Service or PersistentVolumeClaim; return it as the API server made it
        (with its uid: the cache tells it from an older object of its name by that), None if it
        already existed (as the job's own child). CreationRefused when admission or validation
        refuses it, or another object holds its name; RetryableError when the API server said
        the name was taken but no object of that name can be read."""
        meta, kind = obj["metadata"], obj["kind"]
        path = core_path(CORE_RESOURCES[kind], meta["namespace"])
        try:
            return _call("create", kind, lambda: self.rest.request("POST", path, body=obj))
        except Conflict as conflict:
            self._check_owner(obj, str(conflict))
            return None
        except ApiError as error:
            refused = refusal_of(error, kind, meta["name"])
            if refused is None:
                raise
            raise refused from error

    def _check_owner(self, obj: Obj, said: str) -> None:
        """After a 409 (the API server's message: said): the object of that name must be this
        job's, not another's."""
        meta, kind = obj["metadata"], obj["kind"]
        path = core_path(CORE_RESOURCES[kind], meta["namespace"], meta["name"])
        found = _call("get", kind, lambda: self.rest.request("GET", path), 404)
        if found is None:
            # Gone meanwhile, or never there (a proxy's or webhook's 409): no watch need report
            # anything that would bring another pass, so this pass is tried again.
            raise RetryableError(f"{said}, but no {kind} named {meta['name']} exists")
        owners = [o.get("uid") for o in found["metadata"].get("ownerReferences") or []]
        ours = meta["ownerReferences"][0]["uid"]
        if ours not in owners:
            message = f"a {kind} named {meta['name']} exists and is not this job's"
            raise CreationRefused(kind, meta["name"], "NameClash", message, lasting=True)

    def apply_pod_group(self, group: Obj) -> None:
        """Create a gang scheduler's PodGroup, or bring an existing one's spec up to date.
        RetryableError while its API is going or gone (the scheduler being uninstalled): the
        next pass asks discovery again and, if it is gone, says so in status."""
        meta = group["metadata"]
        # Both schedulers' plural is podgroups.
        where = apis_path(group["apiVersion"], "podgroups", meta["namespace"])
        spec = {"spec": group["spec"]}
        try:
            created = _call(
                "create", "PodGroup", lambda: self.rest.request("POST", where, body=group), 409
            )
            if created is None:
                _call("patch", "PodGroup", lambda: self._merge(f"{where}/{meta['name']}", spec))
        except ApiError as error:
            if _api_going(error):
                message = f"PodGroup {meta['name']}: gone, or {group['apiVersion']} going away"
                raise RetryableError(message) from error
            raise

    def _merge(self, path: str, patch: Obj) -> Obj:
        return self.rest.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def create_workload(self, workload: Obj) -> Obj | None:
        """Create a queued job's Kueue Workload; return it as made, None if it exists already.
        RetryableError while Kueue's API is not served (Kueue not installed yet, or going)."""
        version = workload["apiVersion"]
        path = apis_path(version, "workloads", workload["metadata"]["namespace"])
        try:
            return _call(
                "create", "Workload", lambda: self.rest.request("POST", path, body=workload), 409
            )
        except ApiError as error:
            if _api_going(error):
                raise RetryableError(f"create Workload: {version} not served") from error
            raise

    def patch_workload_status(self, namespace: str, name: str, patch: Obj) -> None:
        """A merge patch of a Workload's status (the quota given back, or Finished)."""
        path = apis_path(c.KUEUE_API_VERSION, "workloads", namespace, name, "status")
        # Gone with its job (404): nothing left to give back.
        _call("patch", "Workload", lambda: self._merge(path, patch), benign=404)

    def priority_class_value(self, name: str) -> int | None:
        """The value of a PriorityClass; None when there is none of that name."""
        path = apis_path("scheduling.k8s.io/v1", "priorityclasses", name=name)
        found = _call("get", "PriorityClass", lambda: self.rest.request("GET", path), 404)
        return None if found is None else int(found["value"])

    def resource_flavor(self, name: str) -> Obj | None:
        """One of Kueue's ResourceFlavors (cluster-scoped); None when there is none of that name."""
        path = apis_path(c.KUEUE_API_VERSION, "resourceflavors", name=name)
        return _call("get", "ResourceFlavor", lambda: self.rest.request("GET", path), 404)

    def served_api_versions(self) -> frozenset[str]:
        """Every group/version the API server serves (discovery; any user may ask)."""
        found = _call("get", "APIGroupList", lambda: self.rest.request("GET", "/apis")) or {}
        groups = found.get("groups") or []
        return frozenset(v["groupVersion"] for g in groups for v in g.get("versions") or [])

    def list_objects(self, where: Selection) -> Iterator[tuple[list[Obj], str]]:
        """The selected objects, a page at a time (LIST_PAGE_SIZE), each page with the list's
        resourceVersion to watch from once the last is read; each item says its kind and
        apiVersion (a List's items do not). The ApiError (404: not served) is raised."""
        token: str | None = None
        while True:
            query = {"labelSelector": where.selector or None, "limit": LIST_PAGE_SIZE}
            found = self.rest.request("GET", where.path(), query={**query, "continue": token})
            items = list(found.get("items") or [])
            kind = str(found.get("kind") or "").removesuffix("List")
            for item in items:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", found.get("apiVersion"))
            meta = found.get("metadata") or {}
            yield items, str(meta["resourceVersion"])
            token = meta.get("continue")
            if not token:
                return

    def watch_objects(self, where: Selection, since: str) -> Iterator[Obj]:
        """The raw watch events of the selected objects from resourceVersion `since`, until the
        server ends the watch (WATCH_SECONDS); an ERROR event is raised as ApiError (410:
        expired)."""
        query = {
            "labelSelector": where.selector or None,
            "resourceVersion": since,
            "timeoutSeconds": WATCH_SECONDS,
            "allowWatchBookmarks": "true",
        }
        timeout = (REQUEST_TIMEOUT[0], WATCH_SECONDS + 60.0)
        yield from self.rest.watch(where.path(), query, timeout)

    def dry_run_pod(self, pod: Obj) -> None:
        """Create a pod as a server-side dry run: validated and admitted, never stored. Raises
        the API server's ApiError when it refuses; RetryableError when it does not answer
        within DRY_RUN_TIMEOUT (an admission webhook must answer within its own timeout)."""
        path = core_path("pods", pod["metadata"]["namespace"])
        try:
            self.rest.request(
                "POST", path, query={"dryRun": "All"}, body=pod, timeout=DRY_RUN_TIMEOUT
            )
        except urllib3.exceptions.HTTPError as error:
            raise RetryableError(
                f"dry-run create Pod: no answer: {type(error).__name__}"
            ) from error

    def delete_pod(
        self, namespace: str, name: str, grace_period_seconds: int | None = None
    ) -> None:
        """Delete a pod (graceful; 0 seconds forces it); already gone is fine."""
        path = core_path("pods", namespace, name)
        query = {"gracePeriodSeconds": grace_period_seconds}
        _call("delete", "Pod", lambda: self.rest.request("DELETE", path, query), benign=404)

    def list_children(self, namespace: str | None = None) -> list[Obj]:
        """Every Pod, Service and PersistentVolumeClaim the operator made, in one namespace or
        all: kind, name, namespace and labels only (what tells whose child it is)."""
        selector = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
        found = []
        for kind, resource in CORE_RESOURCES.items():
            path = core_path(resource, namespace)

            def page(token: str | None, path: str = path) -> Obj:
                query = {"labelSelector": selector, "limit": 500, "continue": token}
                return self.rest.request("GET", path, query)

            found += [{"kind": kind, "metadata": _names(i["metadata"])} for i in _pages(kind, page)]
        return found

    def list_jobs(self, namespace: str | None = None) -> list[Obj]:
        """Every job's metadata, in one namespace or all."""
        path = apis_path(c.API_VERSION, c.PLURAL, namespace)

        def page(token: str | None) -> Obj:
            return self.rest.request("GET", path, {"limit": 500, "continue": token})

        return [{"metadata": item["metadata"]} for item in _pages(c.KIND, page)]

    def get_node(self, name: str) -> Obj | None:
        """A node as the API returns it, or None when there is no such node."""
        path = core_path("nodes", name=name)
        return _call("get", "Node", lambda: self.rest.request("GET", path), benign=404)

    def patch_job_status(
        self, namespace: str, name: str, status: Obj, resource_version: str | None = None
    ) -> Obj | None:
        """Merge-patch the status subresource of a job; return the job as written (None when it
        is gone). With resource_version, the API server refuses the write (409, retried) when
        the job changed since that version: a decision made from a stale read (a replica that
        has just taken over, a watch behind) never overwrites a newer status."""
        body: Obj = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        path = apis_path(c.API_VERSION, c.PLURAL, namespace, name, "status")
        return _call("patch", c.KIND, lambda: self._merge(path, body), benign=404)

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a job; its children follow through their ownerReferences."""
        path = apis_path(c.API_VERSION, c.PLURAL, namespace, name)
        query = {"propagationPolicy": "Background"}
        _call("delete", c.KIND, lambda: self.rest.request("DELETE", path, query), benign=404)

    def post_event(self, job: Obj, event_type: str, reason: str, note: str) -> None:
        """Record a Kubernetes event on the job (what `kubectl describe dtj` shows); one that
        repeats within minutes counts up an Event already written (eventseries.py). With an
        event sender, written by it, later; at once without."""
        meta = job["metadata"]
        # The operator's log tells what it decided, one line per event, as `describe` does.
        level = logging.INFO if event_type == "Normal" else logging.WARNING
        log.log(level, "%s/%s %s: %s", meta["namespace"], meta["name"], reason, note)
        seen = Occurrence(meta, event_type, reason, note, time.monotonic(), _micro_time_now())
        if self.event_sender is None:
            self._record(seen)
        else:
            self.event_sender.submit((meta["namespace"], meta["name"]), lambda: self._record(seen))

    def _record(self, seen: Occurrence) -> None:
        meta = seen.regarding
        similar = (meta["namespace"], meta["name"], str(meta.get("uid")), seen.type, seen.reason)
        key, note = self.event_series.series_of(similar, seen.note[:1024], seen.at)
        write, count = self.event_series.observe(key, seen.at)
        try:
            if write is Write.CREATE:
                event = _build_event(meta, seen.type, seen.reason, note, seen.time)
                path = apis_path(EVENTS_API_VERSION, "events", meta["namespace"])
                made = _call("create", "Event", lambda: self.rest.request("POST", path, body=event))
                if made is not None:
                    self.event_series.created(key, made["metadata"]["name"])
            elif write is Write.PATCH:
                self._patch_event_series(meta["namespace"], key, count)
        except (ApiError, RetryableError) as error:
            # Events are best effort: a lost event must not undo or repeat a reconcile.
            log.warning("event %s on %s not recorded: %s", seen.reason, meta["name"], error)

    def flush_event_series(self) -> None:
        """Write the counts of event series that grew since their last write (a heartbeat)."""
        for due in self.event_series.due(time.monotonic()):
            try:
                self._write_series(due.namespace, due.name, due.count)
            except (ApiError, RetryableError) as error:
                log.warning("event series %s not updated: %s", due.name, error)

    def _patch_event_series(self, namespace: str, key: SeriesKey, count: int) -> None:
        name = self.event_series.name_of(key)
        if name is not None:
            self._write_series(namespace, name, count)

    def _write_series(self, namespace: str, name: str, count: int) -> None:
        series = {"count": count, "lastObservedTime": _micro_time_now()}
        path = apis_path(EVENTS_API_VERSION, "events", namespace, name)
        patched = _call("patch", "Event", lambda: self._merge(path, {"series": series}), 404)
        if patched is None:  # deleted meanwhile (events expire): the next one starts anew
            self.event_series.forget_event(name)


EVENTS_API_VERSION = "events.k8s.io/v1"


def _micro_time_now() -> str:
    """Now as a MicroTime (what events.k8s.io wants for eventTime and series times)."""
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _build_event(meta: Obj, event_type: str, reason: str, note: str, when: str) -> Obj:
    """An events.k8s.io/v1 Event regarding the job."""
    return {
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]},
        "eventTime": when,
        "reportingController": f"{c.GROUP}/operator",
        "reportingInstance": "ringleader-operator",
        "action": reason,
        "reason": reason,
        "type": event_type,
        "note": note,
        "regarding": {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
    }
