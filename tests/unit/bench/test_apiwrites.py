"""bench.apiwrites: the operator's writes counted from audit log lines as the API server writes
them (audit.k8s.io/v1 Event, JSON, one per line)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bench.apiwrites import count_writes


def line(verb: str, resource: str, agent: str, at: str, *, code: int = 200, sub: str = "") -> str:
    ref = {"resource": resource, "namespace": "burst", "name": "x", "apiVersion": "v1"}
    if sub:
        ref["subresource"] = sub
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "stage": "ResponseComplete",
            "verb": verb,
            "user": {"username": "ringleader-admin"},
            "userAgent": agent,
            "objectRef": ref,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": at,
        }
    )


OPERATOR = "ringleader-operator"
LOG = [
    line("create", "pods", OPERATOR, "2026-11-30T10:00:01.000001Z"),
    line("create", "pods", OPERATOR, "2026-11-30T10:00:02.5Z", code=409),
    line("patch", "distributedtrainingjobs", OPERATOR, "2026-11-30T10:00:03Z", sub="status"),
    line("patch", "distributedtrainingjobs", "kopf/1.45.2", "2026-11-30T10:00:04Z"),
    line("delete", "pods", "kubectl/v1.36.3 (linux/amd64)", "2026-11-30T10:00:05Z"),
    line("create", "events", OPERATOR, "2026-11-30T10:00:09Z"),
    "",
]


def test_only_the_operators_user_agents_are_counted_by_verb_and_resource() -> None:
    writes = count_writes(LOG)
    assert dict(writes.by_kind) == {
        "create pods": 2,
        "patch distributedtrainingjobs/status": 1,
        "patch distributedtrainingjobs": 1,
        "create events": 1,
    }
    assert writes.total() == 5
    assert dict(writes.refused) == {"create pods": 1}


def test_a_window_keeps_what_was_received_from_since_until_before_until() -> None:
    since = datetime(2026, 11, 30, 10, 0, 2, tzinfo=UTC)
    until = datetime(2026, 11, 30, 10, 0, 9, tzinfo=UTC)
    writes = count_writes(LOG, since, until)
    assert dict(writes.by_kind) == {
        "create pods": 1,
        "patch distributedtrainingjobs/status": 1,
        "patch distributedtrainingjobs": 1,
    }
