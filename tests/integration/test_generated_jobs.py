"""Generated jobs against the real API server and operator (hypothesis): each manifest is either
refused at `kubectl apply` with a field named, or reconciled to a phase with a reason; never an
operator exception, never a job left without a phase."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ringleader import constants as c
from tests.harness import OperatorProcess
from tests.kube import Kube, KubectlError, wait_until

Obj = dict[str, Any]
NAMES = (f"gen-{n}" for n in itertools.count())

CLASSES = [f.value for f in c.FailureClass]
ACTIONS = [a.value for a in c.FailureAction]


@st.composite
def valid_specs(draw: st.DrawFn) -> Obj:
    """A job the API server takes, with a random choice of the optional parts."""
    replicas = draw(st.integers(min_value=1, max_value=4))
    trainer: Obj = {
        "name": "trainer",
        "image": "ringleader-trainer:0.1.0",
        "command": ["python", "-m", "ringleader_trainer.launch"],
        "resources": {"limits": {"nvidia.com/gpu": draw(st.sampled_from(["1", "2", 8]))}},
    }
    spec: Obj = {"replicas": replicas, "template": {"spec": {"containers": [trainer]}}}
    optional: dict[str, Any] = {
        "elastic": st.just({"minReplicas": 1, "maxReplicas": max(replicas, 4)}),
        "nprocPerNode": st.one_of(st.integers(1, 4), st.just("auto")),
        "checkpoint": st.sampled_from([{"size": "1Gi"}, {"claimName": "ckpt", "keep": 2}]),
        "failurePolicy": st.fixed_dictionaries(
            {},
            optional={
                "maxRestarts": st.integers(0, 20),
                "rules": st.lists(
                    st.fixed_dictionaries(
                        {"action": st.sampled_from(ACTIONS)},
                        optional={
                            "classes": st.lists(st.sampled_from(CLASSES), max_size=2),
                            "exitCodes": st.lists(st.integers(0, 255), max_size=2),
                        },
                    ),
                    max_size=2,
                ),
            },
        ),
        "networking": st.fixed_dictionaries({"shmSize": st.sampled_from(["64Mi", "1Gi", 2])}),
        "scheduling": st.sampled_from(
            [
                {"gang": True},
                {"schedulerName": "volcano", "queueName": "q", "gang": True},
                {"startupTimeoutSeconds": 600},
                {"priorityClassName": "none-such"},
            ]
        ),
        "runPolicy": st.fixed_dictionaries(
            {},
            optional={
                "suspend": st.booleans(),
                "activeDeadlineSeconds": st.integers(1, 3600),
                "ttlSecondsAfterFinished": st.integers(0, 3600),
            },
        ),
    }
    for field, strategy in optional.items():
        if draw(st.booleans()):
            spec[field] = draw(strategy)
    return spec


def _trainer(spec: Obj) -> Obj:
    trainer: Obj = spec["template"]["spec"]["containers"][0]
    return trainer


# Ways to break a valid job, each something a user could write.
MUTATIONS: dict[str, Any] = {
    "replicas-zero": lambda s: s.update(replicas=0),
    "elastic-inverted": lambda s: s.update(elastic={"minReplicas": 3, "maxReplicas": 1}),
    "nproc-word": lambda s: s.update(nprocPerNode="two"),
    "shm-not-a-quantity": lambda s: s.update(networking={"shmSize": "lots"}),
    "claim-and-size": lambda s: s.update(checkpoint={"claimName": "c", "size": "1Gi"}),
    "action-unknown": lambda s: s.update(failurePolicy={"rules": [{"action": "Retry"}]}),
    "exit-code-300": lambda s: s.update(
        failurePolicy={"rules": [{"action": "FailJob", "exitCodes": [300]}]}
    ),
    "queue-without-volcano": lambda s: s.update(scheduling={"queueName": "q"}),
    "deadline-zero": lambda s: s.update(runPolicy={"activeDeadlineSeconds": 0}),
    "no-image": lambda s: _trainer(s).pop("image"),
    "gpus-lots": lambda s: _trainer(s).update(resources={"limits": {"nvidia.com/gpu": "lots"}}),
    "half-a-gpu": lambda s: _trainer(s).update(resources={"requests": {"nvidia.com/gpu": "500m"}}),
    "memory-word": lambda s: _trainer(s).update(resources={"limits": {"memory": "much"}}),
    "reserved-env": lambda s: _trainer(s).update(env=[{"name": "RANK", "value": "3"}]),
    "restart-always": lambda s: s["template"]["spec"].update(restartPolicy="Always"),
    "reserved-volume": lambda s: s["template"]["spec"].update(
        volumes=[{"name": "ringleader-x", "emptyDir": {}}]
    ),
}


@st.composite
def specs(draw: st.DrawFn) -> Obj:
    """A valid job, or one broken in up to two ways."""
    spec = draw(valid_specs())
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=2, unique=True)):
        MUTATIONS[name](spec)
    return spec


def job_of(spec: Obj) -> Obj:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": next(NAMES)},
        "spec": spec,
    }


def phase_and_reason(kube: Kube, namespace: str, name: str, spec: Obj) -> tuple[str, str] | None:
    found = kube.run("get", "dtj", name, "-n", namespace, "-o", "json", "--ignore-not-found")
    if not found.strip():
        # Only ttlSecondsAfterFinished deletes a job; 0 may collect it before a poll sees it.
        assert "ttlSecondsAfterFinished" in spec.get("runPolicy", {}), f"{name} vanished"
        return "Finished", "CollectedAfterTTL"
    status = json.loads(found).get("status") or {}
    conditions = status.get("conditions") or []
    if not status.get("phase") or not conditions or not conditions[0].get("reason"):
        return None
    return str(status["phase"]), str(conditions[0]["reason"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=specs())
def test_a_generated_job_is_refused_naming_a_field_or_gets_a_phase_and_a_reason(
    kube: Kube, operator: OperatorProcess, namespace: str, spec: Obj
) -> None:
    job = job_of(spec)
    name = job["metadata"]["name"]
    log_before = operator.log_path.stat().st_size
    try:
        kube.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))
    except KubectlError as refused:
        message = str(refused)
        assert "spec." in message or "metadata." in message, message
        event("refused at apply")
        return
    try:
        wait_until(
            lambda: phase_and_reason(kube, namespace, name, spec),
            timeout=30,
            what=f"{name} with a phase and a reason: {json.dumps(spec)}",
        )
        event(f"accepted: {phase_and_reason(kube, namespace, name, spec)}")
        new_log = operator.log_path.read_bytes()[log_before:].decode(errors="replace")
        assert "Traceback" not in new_log, new_log[-3000:]
    finally:
        kube.run("delete", "dtj", name, "-n", namespace, "--wait=false", "--ignore-not-found")
