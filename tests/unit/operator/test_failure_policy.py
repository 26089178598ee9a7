"""classify_failure and decide_action: evidence → failure class → action, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from ringleader.constants import FailureAction, FailureClass
from ringleader.failurepolicy import (
    ACTION_HANDLERS,
    Action,
    decide_action,
    gang_backoff_seconds,
    stalled_in_place,
)
from ringleader.failures import WorkerFailure, classify_failure, describe
from ringleader.models import FailurePolicy
from ringleader.statusmodels import LastFailure

Obj = dict[str, Any]


def failed_pod(
    exit_code: int | None = 1,
    reason: str = "Error",
    message: str = "",
    conditions: list[Obj] | None = None,
    pod_reason: str | None = None,
) -> Obj:
    """A failed worker pod as the API reports it."""
    containers = []
    if exit_code is not None:
        done = {"exitCode": exit_code, "reason": reason, "message": message}
        containers = [{"name": "trainer", "state": {"terminated": done}}]
    return {
        "metadata": {"name": "train-worker-1-a0", "uid": "u-1"},
        "status": {
            "phase": "Failed",
            "containerStatuses": containers,
            "conditions": conditions or [],
            "reason": pod_reason,
        },
    }


def disrupted(reason: str) -> list[Obj]:
    return [{"type": "DisruptionTarget", "status": "True", "reason": reason, "message": "m"}]


@pytest.mark.parametrize(
    ("pod", "klass", "reason"),
    [
        (failed_pod(137, "OOMKilled"), "OutOfMemory", "OOMKilled"),
        (failed_pod(1, "Error"), "UserError", "Error"),
        (failed_pod(2, "Error"), "UserError", "Error"),
        (failed_pod(137, "Error"), "Unknown", "Error by SIGKILL"),
        (failed_pod(143, ""), "Unknown", "Killed by SIGTERM"),
        (failed_pod(139, "Error"), "Unknown", "Error by SIGSEGV"),
        (failed_pod(conditions=disrupted("PreemptionByScheduler")), "Preempted", None),
        (failed_pod(conditions=disrupted("EvictionByEvictionAPI")), "Preempted", None),
        (failed_pod(conditions=disrupted("DeletionByTaintManager")), "NodeLost", None),
        (failed_pod(conditions=disrupted("DeletionByPodGC")), "NodeLost", None),
        (failed_pod(None, pod_reason="Evicted"), "Preempted", "Evicted"),
        (failed_pod(None, pod_reason="NodeLost"), "NodeLost", "NodeLost"),
        (failed_pod(1, message='{"failureClass": "Communication"}'), "Communication", None),
        (failed_pod(1, message='{"failureClass": "Bogus"}'), "UserError", "Error"),
        (failed_pod(1, message="Traceback: not json"), "UserError", "Error"),
        (failed_pod(None), "Unknown", None),
    ],
    ids=[
        "oomkilled",
        "exit-1-error",
        "exit-2-error",
        "sigkill-without-oom",
        "sigterm",
        "sigsegv",
        "preempted-by-scheduler",
        "evicted-by-api",
        "taint-manager-node-lost",
        "pod-gc-node-gone",
        "kubelet-evicted",
        "status-reason-node-lost",
        "trainer-report",
        "trainer-report-unknown-class-ignored",
        "message-not-json",
        "no-evidence",
    ],
)
def test_classify_failure_reads_each_kind_of_evidence(
    pod: Obj, klass: str, reason: str | None
) -> None:
    failure = classify_failure(pod)
    assert failure.failure_class == klass
    assert failure.pod == "train-worker-1-a0" and failure.uid == "u-1"
    if reason is not None:
        assert failure.reason == reason


def test_classify_failure_keeps_the_exit_code_and_message_as_evidence() -> None:
    failure = classify_failure(failed_pod(137, "OOMKilled", "x" * 5000))
    assert (failure.exit_code, len(failure.message)) == (137, 1024)


def test_the_trainers_own_explanation_becomes_the_failures_message() -> None:
    report = '{"failureClass": "Communication", "message": "lost the rendezvous store", "step": 9}'
    failure = classify_failure(failed_pod(1, "Error", report))
    assert (failure.failure_class, failure.reason) == ("Communication", "ReportedByTrainer")
    assert failure.message == "lost the rendezvous store"


def test_the_cluster_disrupting_a_pod_outweighs_its_exit_code() -> None:
    pod = failed_pod(143, "Error", conditions=disrupted("PreemptionByScheduler"))
    assert classify_failure(pod).failure_class == "Preempted"


def failure(klass: str, exit_code: int | None = 1) -> WorkerFailure:
    return WorkerFailure(FailureClass(klass), "train-worker-1-a0", "u-1", exit_code)


RULES = FailurePolicy.model_validate(
    {
        "rules": [
            {"exitCodes": [42], "action": "FailJob"},
            {"classes": ["UserError"], "exitCodes": [3], "action": "RestartWorker"},
            {"classes": ["OutOfMemory", "Communication"], "action": "RestartWorker"},
            {"classes": ["UserError"], "action": "FailJob"},
            {"classes": ["Preempted"], "action": "RestartGang"},
        ]
    }
)


@pytest.mark.parametrize(
    ("policy", "given", "expected"),
    [
        (None, failure("UserError"), Action(FailureAction.RESTART_WORKER, True)),
        (None, failure("OutOfMemory", 137), Action(FailureAction.RESTART_WORKER, True)),
        (None, failure("Unknown", None), Action(FailureAction.RESTART_WORKER, True)),
        (None, failure("Preempted"), Action(FailureAction.RESTART_WORKER, False)),
        (None, failure("NodeLost", None), Action(FailureAction.RESTART_WORKER, False)),
        (None, failure("Hang", None), Action(FailureAction.RESTART_GANG, True)),
        (RULES, failure("Communication", 42), Action(FailureAction.FAIL_JOB, True)),
        (RULES, failure("UserError", 3), Action(FailureAction.RESTART_WORKER, True)),
        (RULES, failure("UserError", 1), Action(FailureAction.FAIL_JOB, True)),
        (RULES, failure("OutOfMemory", 137), Action(FailureAction.RESTART_WORKER, True)),
        (RULES, failure("Preempted"), Action(FailureAction.RESTART_GANG, True)),
        (RULES, failure("NodeLost", None), Action(FailureAction.RESTART_WORKER, False)),
        (RULES, failure("Hang", None), Action(FailureAction.RESTART_GANG, True)),
    ],
    ids=[
        "default-user-error",
        "default-oom",
        "default-unknown",
        "default-preempted-uncounted",
        "default-node-lost-uncounted",
        "default-hang-restarts-the-gang",
        "exit-code-rule-first-wins",
        "class-and-exit-code-both-match",
        "class-rule-after-a-non-matching-exit-code",
        "one-of-several-classes",
        "explicit-rule-counts-by-default",
        "no-match-falls-back-to-default",
        "no-match-counted-default",
    ],
)
def test_decide_action_takes_the_first_matching_rule_else_the_default(
    policy: FailurePolicy | None, given: WorkerFailure, expected: Action
) -> None:
    assert decide_action(policy, given) == expected


def test_a_rule_can_say_a_restart_does_not_count() -> None:
    policy = FailurePolicy.model_validate(
        {
            "rules": [
                {
                    "classes": ["Communication"],
                    "action": "RestartWorker",
                    "countTowardsMaxRestarts": False,
                }
            ]
        }
    )
    assert decide_action(policy, failure("Communication")) == Action(
        FailureAction.RESTART_WORKER, False
    )


def test_an_exit_code_rule_does_not_match_a_failure_without_an_exit_code() -> None:
    policy = FailurePolicy.model_validate({"rules": [{"exitCodes": [0], "action": "FailJob"}]})
    assert decide_action(policy, failure("NodeLost", None)) == Action(
        FailureAction.RESTART_WORKER, False
    )


def test_describe_names_the_pod_the_class_and_the_exit_code() -> None:
    assert describe(failure("OutOfMemory", 137)) == (
        "worker train-worker-1-a0 failed (OutOfMemory, exit 137)"
    )


def test_gang_backoff_starts_at_zero_and_doubles_up_to_a_minute() -> None:
    assert [gang_backoff_seconds(n) for n in range(1, 9)] == [0, 2, 4, 8, 16, 32, 60, 60]


REPLACED = LastFailure.model_validate(
    {
        "class": "OutOfMemory",
        "pod": "train-worker-1-a0",
        "podUID": "u1",
        "exitCode": 137,
        "message": "out of memory",
        "action": "RestartWorker",
    }
)


def test_an_in_place_recovery_without_a_step_escalates_once_its_time_is_up() -> None:
    assert stalled_in_place(REPLACED, 60, progressed=False, waited=59.0) is None
    escalated = stalled_in_place(REPLACED, 60, progressed=False, waited=60.0)
    assert escalated is not None
    assert (escalated.failure_class, escalated.pod, escalated.uid) == (
        "OutOfMemory",
        "train-worker-1-a0",
        "u1",
    )
    assert escalated.reason == "InPlaceRecoveryTimedOut"
    assert escalated.message.startswith("no training step within 60s after train-worker-1-a0")
    assert describe(escalated) == "in-place recovery of train-worker-1-a0 did not resume training"


def test_an_in_place_recovery_that_stepped_or_a_gang_restart_never_escalates() -> None:
    assert stalled_in_place(REPLACED, 60, progressed=True, waited=600.0) is None
    gang = REPLACED.model_copy(update={"action": FailureAction.RESTART_GANG})
    assert stalled_in_place(gang, 60, progressed=False, waited=600.0) is None


def test_every_failure_action_has_a_handler() -> None:
    assert set(ACTION_HANDLERS) == set(FailureAction)
