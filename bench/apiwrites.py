"""An operator's writes as the API server saw them: read from the local cluster's audit log.

The local clusters log every write by a client outside the control plane (one JSON line per
request, tools/localcluster/audit-policy.yaml). The operator's requests are told apart by their
user agent: `ringleader-operator` (its API client, ringleader.kube.USER_AGENT) and `kopf/<version>`
(kopf's own calls). Counted by "verb resource[/subresource]", each request once, whatever its
answer; those answered with an error are also counted apart.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

OPERATOR_AGENTS = ("ringleader-operator", "kopf/")


@dataclass
class Writes:
    """Write requests by "verb resource[/subresource]", and those the API server refused."""

    by_kind: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(self.by_kind.values())


def _received(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["requestReceivedTimestamp"]).replace("Z", "+00:00"))


def _kind(event: dict[str, object]) -> str:
    ref = event.get("objectRef") or {}
    assert isinstance(ref, dict)
    resource = str(ref.get("resource") or "?")
    sub = ref.get("subresource")
    return f"{event['verb']} {resource}/{sub}" if sub else f"{event['verb']} {resource}"


def count_writes(
    lines: Iterable[str],
    since: datetime | None = None,
    until: datetime | None = None,
    agents: tuple[str, ...] = OPERATOR_AGENTS,
) -> Writes:
    """The writes in audit log lines from clients whose user agent starts with one of agents,
    received in [since, until) when given."""
    out = Writes()
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if not str(event.get("userAgent") or "").startswith(agents):
            continue
        received = _received(event)
        if (since and received < since) or (until and received >= until):
            continue
        kind = _kind(event)
        out.by_kind[kind] += 1
        code = (event.get("responseStatus") or {}).get("code") or 0
        if int(code) >= 400:
            out.refused[kind] += 1
    return out


def read_writes(log: Path, since: datetime | None = None, until: datetime | None = None) -> Writes:
    """The operator's writes in the audit log at `log`, in [since, until)."""
    with log.open() as lines:
        return count_writes(lines, since, until)
