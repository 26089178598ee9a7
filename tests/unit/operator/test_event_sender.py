"""Events written off the reconcile path: each job's in order, the pass never waiting for them."""

from __future__ import annotations

import threading
from typing import Any, cast

from ringleader.apiclient import RestClient
from ringleader.eventsender import EventSender
from ringleader.kube import KubeApi


class SlowEvents:
    """An API server whose Event writes wait until let go; they are recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.go = threading.Event()

    def request(self, method: str, path: str, *_: Any, body: Any = None, **__: Any) -> Any:
        assert self.go.wait(timeout=5)
        if method == "POST":
            self.calls.append(("create", body["note"]))
            return {"metadata": {"name": f"e-{len(self.calls)}"}}
        self.calls.append(("patch", (path.rpartition("/")[2], body["series"]["count"])))
        return body


def job(name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}"}}


def test_a_pass_posts_its_events_without_waiting_and_each_job_keeps_its_order() -> None:
    server = SlowEvents()
    api = KubeApi(cast(RestClient, server))
    api.event_sender = EventSender(senders=2)
    api.event_sender.start()
    for name in ("a", "b", "c"):
        api.post_event(job(name), "Normal", "WorkersStarting", f"{name}: 0/2 ready")
        api.post_event(job(name), "Normal", "WorkersStarting", f"{name}: 0/2 ready")
        api.post_event(job(name), "Normal", "AllWorkersRunning", f"{name}: 2/2 ready")
    assert server.calls == []  # posted: nothing written yet, no pass held up
    server.go.set()
    api.event_sender.stop(timeout=5)
    for name in ("a", "b", "c"):
        mine = [c for c in server.calls if c[0] == "patch" or c[1].startswith(f"{name}:")]
        creates = [note for kind, note in mine if kind == "create"]
        assert creates == [f"{name}: 0/2 ready", f"{name}: 2/2 ready"]
    # The second of each series counted up the Event its first created (same thread, in order).
    assert len([c for c in server.calls if c[0] == "patch"]) == 3
    assert len(server.calls) == 9


def test_an_event_that_fails_to_be_written_spares_the_ones_after_it() -> None:
    written: list[int] = []

    def failing() -> None:
        raise RuntimeError("the API server went away")

    sender = EventSender(senders=1)
    sender.start()
    sender.submit("job", failing)
    sender.submit("job", lambda: written.append(1))
    sender.stop(timeout=5)
    assert written == [1]


def test_without_a_sender_the_event_is_written_before_post_event_returns() -> None:
    server = SlowEvents()
    server.go.set()
    KubeApi(cast(RestClient, server)).post_event(job("a"), "Normal", "Resized", "2 -> 4")
    assert server.calls == [("create", "2 -> 4")]
