"""The launcher's verdict on workers that failed for good, for the operator's classification."""

from __future__ import annotations

import json

from ringleader_trainer.verdict import AgentEnd, WorkerDeath, judge, read_failure_message

GLOO = (
    "RuntimeError: [gloo/transport/tcp/pair.cc:537] Read error [10.252.0.16]:22157: "
    "Connection reset by peer\nmore detail"
)


def test_a_collective_error_is_communication_not_the_users_code() -> None:
    end = judge([WorkerDeath(1, GLOO)])
    assert end.code == 1
    assert end.failure == {"failureClass": "Communication", "message": GLOO.splitlines()[0]}


def test_an_exception_of_the_users_code_is_a_user_error() -> None:
    end = judge([WorkerDeath(1, "ValueError: bad learning rate"), WorkerDeath(1, GLOO)])
    assert end.failure == {"failureClass": "UserError", "message": "ValueError: bad learning rate"}


def test_a_worker_killed_by_a_signal_is_left_to_the_exit_code() -> None:
    assert judge([WorkerDeath(-9, "Signal 9 (SIGKILL) received by PID 7")]) == AgentEnd(137)


def test_workers_that_left_for_a_re_forming_group_point_at_the_group() -> None:
    for code in (75, 143):
        assert judge([WorkerDeath(code, "")]).failure["failureClass"] == "Communication"


def test_the_verdict_fits_a_termination_message() -> None:
    end = judge([WorkerDeath(1, "E" * 10_000)])
    assert len(json.dumps(end.failure)) < 1024


def test_a_recorded_exception_is_read_from_the_agents_nested_message() -> None:
    recorded = {"message": "ValueError: bad input", "extraInfo": {"timestamp": "1"}}
    assert read_failure_message(recorded) == "ValueError: bad input"
    assert read_failure_message("Signal 9 (SIGKILL) received") == "Signal 9 (SIGKILL) received"
