"""The only module that talks to the Kubernetes API (official client, called from worker threads).

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from ringleader import constants as c
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


def refusal_of(error: ApiException, kind: str, name: str) -> CreationRefused | None:
    """The refusal an API error on create stands for; None for other errors."""
    if error.status not in (400, 403, 422):
        return None
    message = _status_message(error)
    quota = error.status == 403 and QUOTA_MARKER in message
    reason = "QuotaExceeded" if quota else "Forbidden" if error.status == 403 else "Invalid"
    return CreationRefused(kind, name, reason, message, lasting=not quota)


def status_body(error: ApiException) -> Obj:
    """The API server's Status body of an error ({} when it sent none, or not JSON)."""
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _status_message(error: ApiException) -> str:
    """The message of the API server's Status body (else its HTTP reason)."""
    return str(status_body(error).get("message") or error.reason or error.status)


def _api_going(error: ApiException) -> bool:
    """A custom resource's API not served (404), or its CRD being deleted (403)."""
    return error.status == 404 or CRD_TERMINATING in _status_message(error)


# Seconds to connect, and to wait for an answer: without them a request lost in a restarting API
# server or a broken connection would hold a reconcile worker for good.
REQUEST_TIMEOUT = (5.0, 30.0)
# Two dry runs per admission review must fit into the webhook's 10 s.
DRY_RUN_TIMEOUT = (2.0, 4.0)
KUEUE_API_VERSION = (
    "kueue.x-k8s.io/v1beta2"  # kueueworkload.API_VERSION (kube.py imports nothing of it)
)
# What the operator's requests say they come from (kopf's own watches say kopf/<version>).
USER_AGENT = "ringleader-operator"
WATCH_SECONDS = 300  # the server ends a watch after this; it is started again from where it was


@dataclass(frozen=True)
class CustomObjects:
    """Objects of a custom resource: its group, version and plural, a namespace (None: all),
    and a label selector."""

    group: str
    version: str
    plural: str
    namespace: str | None
    selector: str


class TimedApiClient(client.ApiClient):  # type: ignore[misc]
    """The official client, with a timeout on every request that sets none."""

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        """As ApiClient.call_api, with REQUEST_TIMEOUT unless the call gives one."""
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        return super().call_api(*args, **kwargs)


def load_client_config(kubeconfig: str | None = None) -> client.ApiClient:
    """An API client from a kubeconfig path, $KUBECONFIG, or the in-cluster service account."""
    configuration = client.Configuration()
    # Read $KUBECONFIG now: the client library reads it once, at import time.
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        config.load_kube_config(config_file=path, client_configuration=configuration)
    except config.ConfigException:
        config.load_incluster_config(client_configuration=configuration)
    api_client = TimedApiClient(configuration)
    # The API server's audit log and metrics tell the operator's requests apart by this.
    api_client.user_agent = USER_AGENT
    return api_client


def _call(verb: str, kind: str, fn: Callable[[], T], benign: int | None = None) -> T | None:
    """Run one API call; None when it failed with the benign status (404 or 409)."""
    try:
        result = fn()
    except urllib3.exceptions.HTTPError as error:
        # No answer at all (refused, reset, timed out): the API server restarting, a network
        # fault. Like a 5xx, worth trying again later; nothing to say it failed for good.
        API_ERRORS.labels(status="none").inc()
        raise RetryableError(f"{verb} {kind}: no answer: {type(error).__name__}") from error
    except ApiException as error:
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


Page = tuple[list[Any], str | None]  # a list call's items, and the token of the next page


def _pages(kind: str, fetch: Callable[[str | None], Page | None]) -> list[Any]:
    """Every item of a paged list call (fetch(token) gives one page)."""
    items: list[Any] = []
    token: str | None = None
    while True:
        page = _call("list", kind, functools.partial(fetch, token))
        found, token = page if page is not None else ([], None)
        items += found
        if not token:
            return items


def _names(meta: Any) -> Obj:
    return {"name": meta.name, "namespace": meta.namespace, "labels": dict(meta.labels or {})}


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

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.events = client.EventsV1Api(api_client)
        self.event_series = EventSeries()

    def create(self, obj: Obj) -> Obj | None:
        """Create a Pod, Service or PersistentVolumeClaim; return it as the API server made it
        (with its uid: the cache tells it from an older object of its name by that), None if it
        already existed (as the job's own child). CreationRefused when admission or validation
        refuses it, or another object holds its name; RetryableError when the API server said
        the name was taken but no object of that name can be read."""
        meta, kind = obj["metadata"], obj["kind"]
        namespace, name = meta["namespace"], meta["name"]
        creators: dict[str, Callable[[str, Obj], Any]] = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
        }
        create = creators[kind]
        try:
            made = _call("create", kind, lambda: create(namespace, obj))
        except Conflict as conflict:
            self._check_owner(obj, str(conflict))
            return None
        except ApiException as error:
            refused = refusal_of(error, kind, name)
            if refused is None:
                raise
            raise refused from error
        answer: Obj = self.core.api_client.sanitize_for_serialization(made)
        return answer

    def _check_owner(self, obj: Obj, said: str) -> None:
        """After a 409 (the API server's message: said): the object of that name must be this
        job's, not another's."""
        meta, kind = obj["metadata"], obj["kind"]
        readers: dict[str, Callable[[str, str], Any]] = {
            "Pod": self.core.read_namespaced_pod,
            "Service": self.core.read_namespaced_service,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
        }
        found = _call("get", kind, lambda: readers[kind](meta["name"], meta["namespace"]), 404)
        if found is None:
            # Gone meanwhile, or never there (a proxy's or webhook's 409): no watch need report
            # anything that would bring another pass, so this pass is tried again.
            raise RetryableError(f"{said}, but no {kind} named {meta['name']} exists")
        owners = [o.uid for o in (found.metadata.owner_references or [])]
        ours = meta["ownerReferences"][0]["uid"]
        if ours not in owners:
            message = f"a {kind} named {meta['name']} exists and is not this job's"
            raise CreationRefused(kind, meta["name"], "NameClash", message, lasting=True)

    def apply_pod_group(self, group: Obj) -> None:
        """Create a gang scheduler's PodGroup, or bring an existing one's spec up to date.
        RetryableError while its API is going or gone (the scheduler being uninstalled): the
        next pass asks discovery again and, if it is gone, says so in status."""
        api_group, version = str(group["apiVersion"]).split("/")
        meta = group["metadata"]
        where = (api_group, version, meta["namespace"], "podgroups")  # both schedulers' plural
        spec = {"spec": group["spec"]}
        try:
            created = _call(
                "create",
                "PodGroup",
                lambda: self.custom.create_namespaced_custom_object(*where, group),
                benign=409,
            )
            if created is None:
                _call(
                    "patch",
                    "PodGroup",
                    lambda: self.custom.patch_namespaced_custom_object(*where, meta["name"], spec),
                )
        except ApiException as error:
            if _api_going(error):
                message = f"PodGroup {meta['name']}: gone, or {group['apiVersion']} going away"
                raise RetryableError(message) from error
            raise

    def create_workload(self, workload: Obj) -> Obj | None:
        """Create a queued job's Kueue Workload; return it as made, None if it exists already.
        RetryableError while Kueue's API is not served (Kueue not installed yet, or going)."""
        group, version = str(workload["apiVersion"]).split("/")
        namespace = workload["metadata"]["namespace"]
        try:
            made: Obj | None = _call(
                "create",
                "Workload",
                lambda: self.custom.create_namespaced_custom_object(
                    group, version, namespace, "workloads", workload
                ),
                benign=409,
            )
        except ApiException as error:
            if _api_going(error):
                raise RetryableError(f"create Workload: {group} not served") from error
            raise
        return made

    def patch_workload_status(self, namespace: str, name: str, patch: Obj) -> None:
        """A merge patch of a Workload's status (the quota given back, or Finished)."""
        group, version = c.KUEUE_API_VERSION.split("/")
        _call(
            "patch",
            "Workload",
            lambda: self.custom.patch_namespaced_custom_object_status(
                group, version, namespace, "workloads", name, patch
            ),
            benign=404,  # gone with its job: nothing left to give back
        )

    def priority_class_value(self, name: str) -> int | None:
        """The value of a PriorityClass; None when there is none of that name."""
        scheduling = client.SchedulingV1Api(self.core.api_client)
        found = _call("get", "PriorityClass", lambda: scheduling.read_priority_class(name), 404)
        return None if found is None else int(found.value)

    def resource_flavor(self, name: str) -> Obj | None:
        """One of Kueue's ResourceFlavors (cluster-scoped); None when there is none of that name."""
        group, version = c.KUEUE_API_VERSION.split("/")
        read = self.custom.get_cluster_custom_object
        found: Obj | None = _call(
            "get", "ResourceFlavor", lambda: read(group, version, "resourceflavors", name), 404
        )
        return found

    def served_api_versions(self) -> frozenset[str]:
        """Every group/version the API server serves (discovery; any user may ask)."""
        apis = client.ApisApi(self.core.api_client)
        found = _call("get", "APIGroupList", apis.get_api_versions)
        groups = (found.groups if found is not None else None) or []
        return frozenset(v.group_version for g in groups for v in g.versions or [])

    def list_custom_objects(self, where: CustomObjects) -> tuple[list[Obj], str]:
        """Every object of a custom resource (in one namespace or all) with these labels, and
        the list's resourceVersion to watch from. The ApiException (404: not served) is raised."""
        if where.namespace:
            found = self.custom.list_namespaced_custom_object(
                where.group, where.version, where.namespace, where.plural,
                label_selector=where.selector, _request_timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        else:
            found = self.custom.list_cluster_custom_object(
                where.group, where.version, where.plural,
                label_selector=where.selector, _request_timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        return list(found.get("items") or []), str(found["metadata"]["resourceVersion"])

    def watch_custom_objects(self, where: CustomObjects, since: str) -> Iterator[Obj]:
        """The raw watch events of such objects from resourceVersion `since`, until the server
        ends the watch (WATCH_SECONDS); an ERROR event is raised as ApiException (410: expired)."""
        if where.namespace:
            list_fn: Callable[..., Any] = self.custom.list_namespaced_custom_object
            args: tuple[str, ...] = (where.group, where.version, where.namespace, where.plural)
        else:
            list_fn = self.custom.list_cluster_custom_object
            args = (where.group, where.version, where.plural)
        events = watch.Watch().stream(
            list_fn, *args,
            label_selector=where.selector, resource_version=since,
            timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True,
            _request_timeout=(REQUEST_TIMEOUT[0], WATCH_SECONDS + 60),
        )  # fmt: skip
        yield from events

    def dry_run_pod(self, pod: Obj) -> None:
        """Create a pod as a server-side dry run: validated and admitted, never stored. Raises
        the API server's ApiException when it refuses; RetryableError when it does not answer
        within DRY_RUN_TIMEOUT (an admission webhook must answer within its own timeout)."""
        namespace = pod["metadata"]["namespace"]
        try:
            self.core.create_namespaced_pod(
                namespace, pod, dry_run="All", _request_timeout=DRY_RUN_TIMEOUT
            )
        except urllib3.exceptions.HTTPError as error:
            raise RetryableError(
                f"dry-run create Pod: no answer: {type(error).__name__}"
            ) from error

    def delete_pod(
        self, namespace: str, name: str, grace_period_seconds: int | None = None
    ) -> None:
        """Delete a pod (graceful; 0 seconds forces it); already gone is fine."""
        _call(
            "delete",
            "Pod",
            lambda: self.core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=grace_period_seconds
            ),
            benign=404,
        )

    def list_children(self, namespace: str | None = None) -> list[Obj]:
        """Every Pod, Service and PersistentVolumeClaim the operator made, in one namespace or
        all: kind, name, namespace and labels only (what tells whose child it is)."""
        # Each kind's lister, cluster-wide or of one namespace: list_<resource>_for_all_namespaces
        # or list_namespaced_<resource>(namespace).
        resources = {
            "Pod": "pod",
            "Service": "service",
            "PersistentVolumeClaim": "persistent_volume_claim",
        }
        listers = [
            (
                kind,
                getattr(self.core, f"list_{resource}_for_all_namespaces")
                if namespace is None
                else functools.partial(
                    getattr(self.core, f"list_namespaced_{resource}"), namespace
                ),
            )
            for kind, resource in resources.items()
        ]
        selector = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
        found = []
        for kind, lister in listers:

            def page(token: str | None, lister: Callable[..., Any] = lister) -> Page:
                listed = lister(label_selector=selector, limit=500, _continue=token)
                return listed.items or [], listed.metadata._continue

            found += [{"kind": kind, "metadata": _names(i.metadata)} for i in _pages(kind, page)]
        return found

    def list_jobs(self, namespace: str | None = None) -> list[Obj]:
        """Every job's metadata, in one namespace or all."""

        def page(token: str | None) -> Page:
            where = (c.GROUP, c.VERSION) + ((namespace,) if namespace else ())
            lister = (
                self.custom.list_namespaced_custom_object
                if namespace
                else self.custom.list_cluster_custom_object
            )
            found = lister(*where, c.PLURAL, limit=500, _continue=token)
            return found["items"], found.get("metadata", {}).get("continue")

        return [{"metadata": item["metadata"]} for item in _pages(c.KIND, page)]

    def get_node(self, name: str) -> Obj | None:
        """A node as the API returns it (camelCase keys), or None when there is no such node."""
        node = _call("get", "Node", lambda: self.core.read_node(name), benign=404)
        if node is None:
            return None
        found: Obj = self.core.api_client.sanitize_for_serialization(node)
        return found

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
        return _call(
            "patch",
            c.KIND,
            lambda: self.custom.patch_namespaced_custom_object_status(
                c.GROUP, c.VERSION, namespace, c.PLURAL, name, body
            ),
            benign=404,
        )

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a job; its children follow through their ownerReferences."""
        _call(
            "delete",
            c.KIND,
            lambda: self.custom.delete_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL, name, propagation_policy="Background"
            ),
            benign=404,
        )

    def post_event(self, job: Obj, event_type: str, reason: str, note: str) -> None:
        """Record a Kubernetes event on the job (what `kubectl describe dtj` shows); one that
        repeats within minutes counts up an Event already written (eventseries.py)."""
        meta = job["metadata"]
        # The operator's log tells what it decided, one line per event, as `describe` does.
        level = logging.INFO if event_type == "Normal" else logging.WARNING
        log.log(level, "%s/%s %s: %s", meta["namespace"], meta["name"], reason, note)
        similar = (meta["namespace"], meta["name"], str(meta.get("uid")), event_type, reason)
        now = time.monotonic()
        key, note = self.event_series.series_of(similar, note[:1024], now)
        write, count = self.event_series.observe(key, now)
        try:
            if write is Write.CREATE:
                made = _call(
                    "create",
                    "Event",
                    lambda: self.events.create_namespaced_event(
                        meta["namespace"], _build_event(meta, event_type, reason, note)
                    ),
                )
                if made is not None:
                    self.event_series.created(key, made.metadata.name)
            elif write is Write.PATCH:
                self._patch_event_series(meta["namespace"], key, count)
        except (ApiException, RetryableError) as error:
            # Events are best effort: a lost event must not undo or repeat a reconcile.
            log.warning("event %s on %s not recorded: %s", reason, meta["name"], error)

    def flush_event_series(self) -> None:
        """Write the counts of event series that grew since their last write (a heartbeat)."""
        for due in self.event_series.due(time.monotonic()):
            try:
                self._write_series(due.namespace, due.name, due.count)
            except (ApiException, RetryableError) as error:
                log.warning("event series %s not updated: %s", due.name, error)

    def _patch_event_series(self, namespace: str, key: SeriesKey, count: int) -> None:
        name = self.event_series.name_of(key)
        if name is not None:
            self._write_series(namespace, name, count)

    def _write_series(self, namespace: str, name: str, count: int) -> None:
        series = {"count": count, "lastObservedTime": _micro_time_now()}
        patched = _call(
            "patch",
            "Event",
            lambda: self.events.patch_namespaced_event(name, namespace, {"series": series}),
            benign=404,
        )
        if patched is None:  # deleted meanwhile (events expire): the next one starts anew
            self.event_series.forget_event(name)


def _micro_time_now() -> str:
    """Now as a MicroTime (what events.k8s.io wants for eventTime and series times)."""
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _build_event(meta: Obj, event_type: str, reason: str, note: str) -> Obj:
    """An events.k8s.io/v1 Event regarding the job."""
    return {
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]},
        "eventTime": _micro_time_now(),
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
