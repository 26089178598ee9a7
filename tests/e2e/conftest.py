"""What every e2e test must also show: the operator names no straggler in a normal run (only a
test that slows a worker down on purpose, marked planted_straggler, may see one named)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import OperatorProcess

NAMED = "straggler named in"  # the operator's log line when it names one (ringleader.poller)


@pytest.fixture(autouse=True)
def no_straggler_named_in_a_normal_run(
    request: pytest.FixtureRequest, operator: OperatorProcess
) -> Iterator[None]:
    log = operator.log_path
    start = log.stat().st_size if log.exists() else 0
    yield
    if request.node.get_closest_marker("planted_straggler") or not log.exists():
        return
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    assert [line for line in lines if NAMED in line] == []
