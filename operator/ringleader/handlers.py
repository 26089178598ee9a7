"""kopf glue: watch jobs (kopf), their children and node deletions (listwatch.py) and feed the
controller's queue; answer the validating admission webhook when it is served.

The event handlers are coroutines on purpose: kopf runs plain functions in a thread pool, and
the controller's asyncio queue must only be touched from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import functools
import logging
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

from ringleader import admission, gang
from ringleader import constants as c
from ringleader.apiclient import load_credentials
from ringleader.controller import Controller
from ringleader.eventsender import EventSender
from ringleader.eventseries import HEARTBEAT_SECONDS
from ringleader.kube import KubeApi, Selection, connect
from ringleader.listwatch import Deliver, ListWatch, Source
from ringleader.peering import follow_pauses
from ringleader.poller import ProgressPoller

CHILD_LABELS = {c.LABEL_MANAGED_BY: c.MANAGED_BY}
CONTROLLER_KEY = "ringleader_controller"
POLLER_KEY = "ringleader_progress_poller"
EVENT_HEARTBEAT_KEY = "ringleader_event_heartbeat"
WATCHES_KEY = "ringleader_watches"
# At shutdown, the events still queued are written within this (the pod's grace period is 30 s).
EVENTS_AT_EXIT_SECONDS = 5.0


def _controller(memo: Any) -> Controller:
    controller: Controller = memo[CONTROLLER_KEY]
    return controller


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Give kopf the same credentials our client uses ($KUBECONFIG read now, or in-cluster)."""
    # One reading of the credentials for kopf's watches and our writes alike (kopf's own logins
    # would go through a client library). kopf calls this again after a 401: a rotated
    # service-account token is read anew.
    found = load_credentials()
    token = found.bearer_token()
    return kopf.ConnectionInfo(
        server=found.server,
        ca_path=found.ca_path,
        insecure=found.insecure,
        certificate_path=found.cert_path,
        private_key_path=found.key_path,
        scheme="Bearer" if token else None,
        token=token,
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Create the controller and its workers; serve metrics."""
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # A watch stream that goes silent without closing (a connection lost behind a proxy or a
    # NAT) would otherwise be waited on for ever: no event of that kind would come again.
    settings.watching.client_timeout = 360
    settings.watching.connect_timeout = 30
    settings.peering.lifetime = memo.get("peering_lifetime", 60)
    _serve_admission(settings, memo)
    port = memo.get("metrics_port")
    if port:
        try:
            start_http_server(port)
        except OSError as error:  # a port in use would otherwise be retried forever, silently
            raise kopf.PermanentError(f"cannot serve metrics on port {port}: {error}") from error
    # Only event handlers are registered: kopf then stores nothing on the objects (no
    # annotations, no finalizers), and the controller keeps its own state.
    api = KubeApi(connect())
    api.event_sender = EventSender()
    api.event_sender.start()
    pauses = follow_pauses(peering=bool(memo.get("peering")))
    controller = Controller(
        api,
        workers=memo.get("workers", 8),
        namespaces=memo.get("namespaces"),
        paused=lambda: pauses.paused,
    )
    controller.start()
    memo[CONTROLLER_KEY] = controller
    memo[WATCHES_KEY] = _watch_children_and_nodes(api, controller, memo.get("namespaces"))
    memo[EVENT_HEARTBEAT_KEY] = asyncio.create_task(_write_event_series(api))
    interval = memo.get("progress_interval", 5.0)
    if interval > 0:
        poller = ProgressPoller(
            api,
            controller.cache,
            interval,
            paused=lambda: pauses.paused,
            mirror_writes_per_second=memo.get("progress_writes_per_second", 20.0),
        )
        memo[POLLER_KEY] = asyncio.create_task(poller.run())


async def _write_event_series(api: KubeApi) -> None:
    """The heartbeat of repeated events: their counts, written at most once a beat."""
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        await asyncio.to_thread(api.flush_event_series)


def _serve_admission(settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    port = memo.get("webhook_port")
    if not port:
        return
    certs = Path(memo["webhook_cert_dir"])
    # The configuration is the chart's (or the local cluster's), not kopf's to manage: the
    # operator needs no right to write cluster-wide webhook configurations.
    settings.admission.managed = None
    settings.admission.server = kopf.WebhookServer(
        addr=memo.get("webhook_addr"),
        port=port,
        certfile=str(certs / "tls.crt"),
        pkeyfile=str(certs / "tls.key"),
    )


def register_admission_webhook() -> None:
    """Answer the validating webhook (admission.py). Called before kopf.run only when it is
    served: kopf refuses to start with a webhook handler and no server."""
    kopf.on.validate(
        c.GROUP,
        c.VERSION,
        c.PLURAL,
        id=admission.WEBHOOK_ID,
        operations=["CREATE", "UPDATE"],
        side_effects=False,
        ignore_failures=True,
    )(validate_job)


def validate_job(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Refuse a job whose pods the API server would refuse (a plain function: kopf runs it in a
    thread, and its dry runs block). kwargs["old"]: the job before an update, None on create."""
    controller = memo.get(CONTROLLER_KEY)
    if controller is None:
        return  # still starting: admitted, as while no operator answers at all
    old = kwargs.get("old")
    raw_old = copy.deepcopy(dict(old)) if old else None
    refusal = admission.review(copy.deepcopy(dict(body)), raw_old, controller.api.dry_run_pod)
    if refusal is not None:
        raise kopf.AdmissionError(refusal, code=422)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop the progress poller, the events' heartbeat and the controller's workers."""
    for key in (POLLER_KEY, EVENT_HEARTBEAT_KEY):
        if (task := memo.get(key)) is not None:
            task.cancel()
    for watch in memo.get(WATCHES_KEY, []):
        watch.stop()
    controller = _controller(memo)
    await controller.stop()
    if (sender := controller.api.event_sender) is not None:
        await asyncio.to_thread(sender.stop, EVENTS_AT_EXIT_SECONDS)


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL)
async def job_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """A job was listed, added, changed or deleted."""
    controller = _controller(memo)
    _relist_after_a_listing(controller, event["type"])
    body: dict[str, Any] = dict(event["object"])
    if event["type"] == "DELETED":
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        controller.cache.forget_job(key)
        controller.status_pacer.forget(key)
    else:
        controller.enqueue(controller.cache.put_job(body))
    controller.phase_gauge_soon()


def _relist_after_a_listing(controller: Controller, event_type: str | None) -> None:
    # A watch (re)started lists what exists (type None) but never what went meanwhile.
    if event_type is None:
        controller.relister.soon()


def _child_changed(controller: Controller, event_type: str | None, obj: dict[str, Any]) -> None:
    deleted = event_type == "DELETED"
    key = controller.cache.put_child(obj, deleted=deleted)
    if key is not None:
        controller.enqueue(key, urgent=deleted)


def _children_changed(controller: Controller, event_type: str | None, objs: list[Any]) -> None:
    _relist_after_a_listing(controller, event_type)
    for obj in objs:
        _child_changed(controller, event_type, obj)


def _nodes_changed(controller: Controller, event_type: str | None, objs: list[Any]) -> None:
    """Only a node's deletion matters (its pods would otherwise look Running for 40 s or more,
    until the pod garbage collector removes them)."""
    if event_type == "DELETED":
        for node in objs:
            controller.node_deleted(node["metadata"]["name"])


# What the operator watches besides its jobs (apiVersion, plural): the kinds it makes, then the
# optional APIs its children may belong to: the gang schedulers' PodGroups (their status says why
# a gang waits, gang.explain_unplaced) and Kueue's Workloads (queueing.py).
CHILDREN = (
    ("v1", "pods"),
    ("v1", "services"),
    ("v1", "persistentvolumeclaims"),
    (gang.VOLCANO.api_version, gang.VOLCANO.plural),
    (gang.COSCHEDULING.api_version, gang.COSCHEDULING.plural),
    (c.KUEUE_API_VERSION, "workloads"),
)


def _watch_children_and_nodes(
    api: KubeApi, controller: Controller, namespaces: list[str] | None
) -> list[ListWatch]:
    """Start a watch (listwatch.py) of each kind of child, in each namespace watched, and one
    of the nodes."""
    selector = ",".join(f"{k}={v}" for k, v in CHILD_LABELS.items())
    scopes: list[str | None] = list(namespaces) if namespaces else [None]  # None: all
    children = _deliver_on_loop(functools.partial(_children_changed, controller))
    watches = [
        _watch(api, Selection(version, plural, namespace, selector), children)
        for version, plural in CHILDREN
        for namespace in scopes
    ]
    nodes = _deliver_on_loop(functools.partial(_nodes_changed, controller))
    watches.append(_watch(api, Selection("v1", "nodes", None, ""), nodes))
    return watches


def _watch(api: KubeApi, where: Selection, deliver: Deliver) -> ListWatch:
    name = where.plural if where.api_version == "v1" else f"{where.plural} {where.api_version}"
    source = Source(
        name=f"{name} in {where.namespace}" if where.namespace else name,
        list_pages=functools.partial(api.list_objects, where),
        watch_from=functools.partial(api.watch_objects, where),
    )
    watch = ListWatch(source, deliver)
    watch.start()
    return watch


def _deliver_on_loop(handle: Deliver) -> Deliver:
    """What a watch thread delivers, handled on the event loop's thread (the controller's queue
    lives there). A listed page is waited for before the next is read, so that a listing of
    thousands of pods is never held at once; a watch event is not (a burst's events would
    otherwise wait on the loop one by one)."""
    loop = asyncio.get_running_loop()

    def on_loop(
        event_type: str | None, objs: list[Any], handled: concurrent.futures.Future[None] | None
    ) -> None:
        try:
            handle(event_type, objs)
        finally:
            if handled is not None:
                handled.set_result(None)

    def deliver(event_type: str | None, objs: list[Any]) -> None:
        handled: concurrent.futures.Future[None] | None = None
        if event_type is None:  # a listed page
            handled = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(on_loop, event_type, objs, handled)
        except RuntimeError:  # the loop is closed: the operator is exiting
            return
        if handled is not None:
            handled.result()

    return deliver
