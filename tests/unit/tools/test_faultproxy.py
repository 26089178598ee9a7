"""The fault proxy's decision: which request meets which fault, in what share."""

from __future__ import annotations

import random
from collections import Counter

from tools.faultproxy.faults import Fault, Faults, Kind, decide, is_watch

DRAWS = 20_000


def kinds(faults: Faults, method: str, query: dict[str, str] | None = None) -> Counter[str]:
    rng = random.Random(5)
    seen: Counter[str] = Counter()
    for _ in range(DRAWS):
        fault = decide(faults, method, query or {}, rng)
        seen[fault.kind if fault else "pass"] += 1
    return seen


def test_no_faults_let_every_request_pass() -> None:
    assert kinds(Faults.none(), "PATCH") == {"pass": DRAWS}
    assert kinds(Faults.none(), "GET", {"watch": "true"}) == {"pass": DRAWS}


def test_each_fault_comes_in_about_its_share() -> None:
    faults = Faults(throttled=0.1, server_error=0.2, conflict=0.05, slow=0.15)
    seen = kinds(faults, "POST")
    for kind, share in ((Kind.THROTTLED, 0.1), (Kind.SERVER_ERROR, 0.2), (Kind.CONFLICT, 0.05)):
        assert abs(seen[kind] / DRAWS - share) < 0.015, (kind, seen)
    assert abs(seen["pass"] / DRAWS - 0.5) < 0.015, seen


def test_a_read_never_meets_a_conflict() -> None:
    seen = kinds(Faults(conflict=0.5, slow=0.1), "GET")
    assert seen[Kind.CONFLICT] == 0
    assert seen[Kind.SLOW] > 0


def test_a_patch_meets_a_conflict_only_when_it_names_a_resource_version() -> None:
    rng = random.Random(3)
    plain = [decide(Faults(conflict=1.0), "PATCH", {}, rng) for _ in range(100)]
    guarded = [decide(Faults(conflict=1.0), "PATCH", {}, rng, guarded=True) for _ in range(100)]
    assert plain == [None] * 100
    assert all(f is not None and f.kind is Kind.CONFLICT for f in guarded)
    assert kinds(Faults(conflict=1.0), "DELETE") == {Kind.CONFLICT: DRAWS}


def test_a_watch_is_only_ever_cut_within_its_bound() -> None:
    rng = random.Random(1)
    faults = Faults(throttled=1.0, watch_cut_after=8.0)
    cuts = [decide(faults, "GET", {"watch": "1"}, rng) for _ in range(200)]
    assert all(isinstance(c, Fault) and c.kind is Kind.WATCH_CUT for c in cuts)
    assert all(4.0 <= c.seconds <= 8.0 for c in cuts if c is not None)


def test_what_counts_as_a_watch() -> None:
    assert is_watch("GET", {"watch": "true"})
    assert not is_watch("GET", {"watch": "false"})
    assert not is_watch("POST", {"watch": "true"})
