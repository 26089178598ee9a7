"""Repeated events fold into one Event with a count: what is written when, and what is not."""

from __future__ import annotations

from typing import Any, cast

from ringleader.apiclient import ApiError, RestClient
from ringleader.eventseries import (
    COMBINED,
    HEARTBEAT_SECONDS,
    SERIES_WINDOW_SECONDS,
    SIMILAR_LIMIT,
    EventSeries,
    Write,
)
from ringleader.kube import KubeApi

KEY = ("ns", "train", "uid-1", "Normal", "AllWorkersRunning")


def test_the_first_is_created_the_second_patched_and_later_ones_counted_until_a_heartbeat() -> None:
    series = EventSeries()
    assert series.observe(KEY, 0.0) == (Write.CREATE, 1)
    series.created(KEY, "train-abcde")
    assert series.observe(KEY, 1.0) == (Write.PATCH, 2)
    assert series.observe(KEY, 2.0) == (Write.NONE, 3)
    assert series.observe(KEY, 3.0) == (Write.NONE, 4)
    assert series.due(1.0 + HEARTBEAT_SECONDS - 0.1) == []
    (due,) = series.due(1.0 + HEARTBEAT_SECONDS)
    assert (due.namespace, due.name, due.count) == ("ns", "train-abcde", 4)
    assert series.due(100.0) == []  # written: nothing new since


def test_an_occurrence_a_heartbeat_after_the_last_write_is_patched_at_once() -> None:
    series = EventSeries()
    series.observe(KEY, 0.0)
    series.created(KEY, "train-abcde")
    series.observe(KEY, 1.0)
    assert series.observe(KEY, 1.0 + HEARTBEAT_SECONDS) == (Write.PATCH, 3)


def test_other_reasons_types_and_jobs_are_series_of_their_own() -> None:
    series = EventSeries()
    assert series.observe(KEY, 0.0)[0] is Write.CREATE
    series.created(KEY, "train-abcde")
    for other in (
        ("ns", "train", "uid-1", "Normal", "WorkersStarting"),
        ("ns", "train", "uid-1", "Warning", "AllWorkersRunning"),
        ("ns", "train", "uid-2", "Normal", "AllWorkersRunning"),  # a new job of the same name
        ("ns", "other", "uid-3", "Normal", "AllWorkersRunning"),
    ):
        assert series.observe(other, 1.0) == (Write.CREATE, 1)


def test_after_a_quiet_window_or_a_lost_event_the_next_one_is_created_anew() -> None:
    series = EventSeries()
    series.observe(KEY, 0.0)
    series.created(KEY, "train-abcde")
    assert series.observe(KEY, SERIES_WINDOW_SECONDS + 1) == (Write.CREATE, 1)
    series.created(KEY, "train-fghij")
    series.forget_event("train-fghij")
    assert series.observe(KEY, SERIES_WINDOW_SECONDS + 2) == (Write.CREATE, 1)


def test_an_event_whose_create_failed_is_tried_again_by_the_next_occurrence() -> None:
    series = EventSeries()
    series.observe(KEY, 0.0)  # never created: no name
    assert series.observe(KEY, 1.0) == (Write.CREATE, 1)
    assert series.due(100.0) == []


SIMILAR = (*KEY[:3], "Normal", "WorkersStarting")


def test_notes_that_differ_stay_apart_until_too_many_then_fold_into_one_combined_series() -> None:
    series = EventSeries()
    for i in range(SIMILAR_LIMIT):
        key, note = series.series_of(SIMILAR, f"1/2 ready (pod-{i} is being deleted)", float(i))
        assert (key[-1], note) == (note, f"1/2 ready (pod-{i} is being deleted)")
        assert series.observe(key, float(i)) == (Write.CREATE, 1)
        series.created(key, f"train-{i}")
    key, note = series.series_of(SIMILAR, "1/2 ready (pod-x is being deleted)", 20.0)
    assert key[-1] == COMBINED and note == f"{COMBINED}: 1/2 ready (pod-x is being deleted)"
    assert series.observe(key, 20.0) == (Write.CREATE, 1)
    series.created(key, "train-combined")
    again, _ = series.series_of(SIMILAR, "1/2 ready (pod-y is being deleted)", 21.0)
    assert again == key and series.observe(again, 21.0) == (Write.PATCH, 2)
    # A note already in the window keeps its own series.
    own, _ = series.series_of(SIMILAR, "1/2 ready (pod-0 is being deleted)", 22.0)
    assert own[-1] == "1/2 ready (pod-0 is being deleted)"
    # Once the window has passed, notes stand apart again.
    fresh, _ = series.series_of(SIMILAR, "another", 22.0 + SERIES_WINDOW_SECONDS)
    assert fresh[-1] == "another"


class RecordingEvents:
    """An API server's Event create and patch, recorded; the created Event gets a name."""

    def __init__(self, patch_status: int | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.patch_status = patch_status

    def request(self, method: str, path: str, *_: Any, body: Any = None, **__: Any) -> Any:
        events = "/apis/events.k8s.io/v1/namespaces/ns/events"
        if method == "POST":
            assert path == events
            self.calls.append(("create", body))
            return {"metadata": {"name": f"train-{len(self.calls)}"}}
        assert (method, path.rpartition("/")[0]) == ("PATCH", events)
        self.calls.append(("patch", (path.rpartition("/")[2], body["series"]["count"])))
        if self.patch_status is not None:
            raise ApiError(status=self.patch_status)
        return body


def _api(events: RecordingEvents) -> KubeApi:
    return KubeApi(cast(RestClient, events))


JOB = {"metadata": {"namespace": "ns", "name": "train", "uid": "uid-1"}}


def test_a_flapping_job_writes_one_event_and_one_patch_until_the_heartbeat() -> None:
    events = RecordingEvents()
    api = _api(events)
    for _ in range(5):
        api.post_event(JOB, "Normal", "AllWorkersRunning", "Running: 2/2 ready")
    kinds = [kind for kind, _ in events.calls]
    assert kinds == ["create", "patch"]
    assert events.calls[1][1] == ("train-1", 2)
    created = events.calls[0][1]
    assert (created["reason"], created["type"], created["regarding"]["uid"]) == (
        "AllWorkersRunning",
        "Normal",
        "uid-1",
    )


def test_an_event_deleted_meanwhile_starts_a_new_series() -> None:
    events = RecordingEvents(patch_status=404)
    api = _api(events)
    for _ in range(3):
        api.post_event(JOB, "Warning", "WorkerFailed", "worker 1 failed")
    assert [kind for kind, _ in events.calls] == ["create", "patch", "create"]


def test_events_that_say_different_things_are_each_written() -> None:
    events = RecordingEvents()
    api = _api(events)
    api.post_event(JOB, "Normal", "WorkersStarting", "Starting: 0/2 ready")
    api.post_event(JOB, "Normal", "WorkersStarting", "Starting: 1/2 ready (w-1-x is being deleted)")
    notes = [body["note"] for kind, body in events.calls if kind == "create"]
    assert notes == ["Starting: 0/2 ready", "Starting: 1/2 ready (w-1-x is being deleted)"]


def test_the_heartbeat_writes_the_count_the_burst_left_behind(monkeypatch: Any) -> None:
    clock = [0.0]
    monkeypatch.setattr("ringleader.kube.time.monotonic", lambda: clock[0])
    events = RecordingEvents()
    api = _api(events)
    for _ in range(4):
        api.post_event(JOB, "Normal", "WorkersStarting", "Starting: 1/2 ready")
    api.flush_event_series()
    assert len(events.calls) == 2  # not a heartbeat since the patch
    clock[0] = HEARTBEAT_SECONDS
    api.flush_event_series()
    assert events.calls[-1] == ("patch", ("train-1", 4))
    api.flush_event_series()
    assert len(events.calls) == 3  # nothing new: no write at rest
