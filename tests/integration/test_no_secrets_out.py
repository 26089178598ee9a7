"""What a job's template holds (env values, Secret references) never reaches its status, its
events or the operator's log, not even when its workers fail."""

from __future__ import annotations

import json

from tests.harness import OperatorProcess
from tests.integration.test_operator import make_job, wait_for_phase
from tests.integration.test_recovery import fail_worker
from tests.kube import Kube, wait_until, worker_name

SECRET = "TOPSECRET-4c1d"


def test_env_values_and_secret_references_stay_in_the_pods(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    log_before = operator.log_path.stat().st_size
    job = make_job(failurePolicy={"maxRestarts": 0})
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "API_TOKEN", "value": SECRET},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ]
    kube.apply(job, namespace)
    wait_for_phase(kube, namespace, "Running")
    fail_worker(kube, namespace, worker_name(kube, namespace, "train", 1), 1, "Error")
    status = wait_for_phase(kube, namespace, "Failed")
    assert SECRET not in json.dumps(status)
    events = wait_until(lambda: kube.get("events", namespace=namespace)["items"], what="events")
    assert SECRET not in json.dumps([e.get("message") or e.get("note") for e in events])
    assert SECRET not in operator.log_path.read_bytes()[log_before:].decode(errors="replace")
