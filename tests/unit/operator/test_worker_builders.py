"""Builders: a job becomes exactly these Services, pods and claim."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ringleader import builders, naming, rendezvous, workerenv
from ringleader.constants import PROGRESS_PORT
from tests.unit.operator.jobs import make_job, parse, with_container
from tests.unit.operator.workers import slot_of

OWNER = {
    "apiVersion": "ringleader.dev/v1alpha1",
    "kind": "DistributedTrainingJob",
    "name": "digits",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}
STORE = "digits-rdzv.digits-workers.team-a.svc"


def env_of(pod: dict[str, Any], container: int = 0) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = pod["spec"]["containers"][container]["env"]
    return env


def env_map(pod: dict[str, Any], container: int = 0) -> dict[str, Any]:
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in env_of(pod, container)}


def test_worker_gets_exactly_the_env_contract_then_the_defaults() -> None:
    pod = builders.build_worker_pod(parse(make_job()), index=1, attempt=2)
    assert env_of(pod) == [
        {"name": "MASTER_ADDR", "value": "digits-worker-0.digits-workers.team-a.svc"},
        {"name": "MASTER_PORT", "value": "23456"},
        {"name": "WORLD_SIZE", "value": "2"},
        {"name": "RANK", "value": "1"},
        {"name": "PET_NNODES", "value": "2:2"},
        {"name": "PET_NPROC_PER_NODE", "value": "1"},
        {"name": "PET_RDZV_BACKEND", "value": "c10d"},
        {"name": "PET_RDZV_ENDPOINT", "value": f"{STORE}:29400"},
        {"name": "PET_RDZV_ID", "value": "digits-2"},
        {"name": "PET_RDZV_CONF", "value": "is_host=false"},
        {"name": "PET_MAX_RESTARTS", "value": "10"},
        {"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"},
        {"name": "RINGLEADER_JOB_NAME", "value": "digits"},
        {"name": "RINGLEADER_NAMESPACE", "value": "team-a"},
        {
            "name": "RINGLEADER_POD_NAME",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        },
        {"name": "RINGLEADER_REPLICA_INDEX", "value": "1"},
        {"name": "RINGLEADER_RESTART_ATTEMPT", "value": "2"},
        {"name": "RINGLEADER_CHECKPOINT_DIR", "value": "/checkpoints"},
        {"name": "RINGLEADER_CHECKPOINT_KEEP", "value": "3"},
        {"name": "RINGLEADER_PROGRESS_PORT", "value": "29500"},
        {"name": "TORCH_NCCL_ASYNC_ERROR_HANDLING", "value": "1"},
        {"name": "NCCL_DEBUG", "value": "WARN"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def test_worker_pod_is_named_by_slot_and_token_with_labels_and_owner() -> None:
    job = make_job(spec={"template": {"metadata": {"labels": {"team": "nlp"}}, "spec": {
        "containers": [{"name": "trainer", "image": "img"}]}}})  # fmt: skip
    pod = builders.build_worker_pod(parse(job), index=3, attempt=1, token="x7k2p")
    assert pod["metadata"] == {
        "name": "digits-worker-3-a1-x7k2p",
        "namespace": "team-a",
        "labels": {
            "team": "nlp",
            "app.kubernetes.io/managed-by": "ringleader",
            "ringleader.dev/job-name": "digits",
            "ringleader.dev/role": "worker",
            "ringleader.dev/replica-index": "3",
            "ringleader.dev/restart-attempt": "1",
        },
        "ownerReferences": [OWNER],
    }


def test_user_labels_cannot_hide_a_worker_from_the_operator() -> None:
    labels = {"ringleader.dev/job-name": "other", "ringleader.dev/role": "store"}
    job = make_job(spec={"template": {"metadata": {"labels": labels}, "spec": {
        "containers": [{"name": "trainer", "image": "img"}]}}})  # fmt: skip
    pod = builders.build_worker_pod(parse(job), index=0, attempt=0)
    assert pod["metadata"]["labels"]["ringleader.dev/job-name"] == "digits"
    assert pod["metadata"]["labels"]["ringleader.dev/role"] == "worker"


def test_worker_has_a_stable_dns_name_and_is_never_restarted_by_the_kubelet() -> None:
    spec = builders.build_worker_pod(parse(make_job()), index=1, attempt=5)["spec"]
    assert spec["hostname"] == "digits-worker-1"
    assert spec["subdomain"] == "digits-workers"
    assert spec["restartPolicy"] == "Never"
    assert spec["enableServiceLinks"] is False


def test_build_worker_pods_makes_one_pod_per_replica_in_index_order() -> None:
    pods = builders.build_worker_pods(parse(make_job(spec={"replicas": 3})), attempt=0)
    assert [slot_of(p) for p in pods] == [
        "digits-worker-0-a0",
        "digits-worker-1-a0",
        "digits-worker-2-a0",
    ]
    assert len({p["metadata"]["name"] for p in pods}) == 3
    assert [env_map(p)["RANK"] for p in pods] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("nproc", "limits", "expected_nproc"),
    [
        ("auto", {"nvidia.com/gpu": 8}, 8),
        ("auto", {"nvidia.com/gpu": "4"}, 4),
        ("auto", {}, 1),
        (2, {"nvidia.com/gpu": 8}, 2),
    ],
)
def test_processes_per_pod_follow_the_gpu_limit_when_auto(
    nproc: Any, limits: dict[str, Any], expected_nproc: int
) -> None:
    job = with_container(make_job(spec={"replicas": 4, "nprocPerNode": nproc}),
                         resources={"limits": limits})  # fmt: skip
    env = env_map(builders.build_worker_pod(parse(job), index=2, attempt=0))
    assert env["PET_NPROC_PER_NODE"] == str(expected_nproc)
    assert env["WORLD_SIZE"] == str(4 * expected_nproc)
    assert env["RANK"] == str(2 * expected_nproc)


def test_elastic_job_rendezvous_allows_min_to_max_nodes() -> None:
    job = make_job(spec={"replicas": 3, "elastic": {"minReplicas": 2, "maxReplicas": 4}})
    assert env_map(builders.build_worker_pod(parse(job), 0, 0))["PET_NNODES"] == "2:4"


def test_user_env_overrides_a_default_but_keeps_its_own_order_after_the_contract() -> None:
    user = [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "X", "value": "$(RANK)"}]
    env = env_of(builders.build_worker_pod(parse(with_container(make_job(), env=user)), 0, 0))
    names = [var["name"] for var in env]
    assert names.count("NCCL_DEBUG") == 1
    assert env[-2:] == user
    assert names.index("RANK") < names.index("X")


def test_socket_interface_sets_nccl_and_gloo() -> None:
    job = make_job(spec={"networking": {"socketIfname": "eth0"}})
    env = env_map(builders.build_worker_pod(parse(job), 0, 0))
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "eth0"


def test_every_container_gets_the_contract_but_init_containers_do_not() -> None:
    job = make_job()
    job["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s"})
    job["spec"]["template"]["spec"]["initContainers"] = [{"name": "init", "image": "i"}]
    pod = builders.build_worker_pod(parse(job), 0, 0)
    assert env_map(pod, 0) == env_map(pod, 1)
    assert "env" not in pod["spec"]["initContainers"][0]


def test_shm_is_memory_backed_with_the_configured_size() -> None:
    job = make_job(spec={"networking": {"shmSize": "16Gi"}})
    spec = builders.build_worker_pod(parse(job), 0, 0)["spec"]
    assert spec["volumes"][0] == {
        "name": "ringleader-shm",
        "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"},
    }
    assert {"name": "ringleader-shm", "mountPath": "/dev/shm"} in spec["containers"][0][
        "volumeMounts"
    ]


def test_a_user_mount_at_dev_shm_wins() -> None:
    mounts = [{"name": "myshm", "mountPath": "/dev/shm"}]
    pod = builders.build_worker_pod(parse(with_container(make_job(), volumeMounts=mounts)), 0, 0)
    paths = [mt["mountPath"] for mt in pod["spec"]["containers"][0]["volumeMounts"]]
    assert paths == ["/dev/shm", "/checkpoints"]


@pytest.mark.parametrize(
    ("checkpoint", "source"),
    [
        (None, {"emptyDir": {}}),
        ({"claimName": "shared"}, {"persistentVolumeClaim": {"claimName": "shared"}}),
        ({"size": "10Gi"}, {"persistentVolumeClaim": {"claimName": "digits-checkpoint"}}),
    ],
)
def test_checkpoint_volume_comes_from_the_claim_the_user_chose(
    checkpoint: dict[str, Any] | None, source: dict[str, Any]
) -> None:
    job = make_job(spec={"checkpoint": checkpoint} if checkpoint else {})
    volumes = builders.build_worker_pod(parse(job), 0, 0)["spec"]["volumes"]
    assert volumes[-1] == {"name": "ringleader-checkpoint", **source}


def test_checkpoint_mount_path_reaches_both_the_mount_and_the_env() -> None:
    job = make_job(spec={"checkpoint": {"claimName": "c", "mountPath": "/ckpt", "keep": 5}})
    pod = builders.build_worker_pod(parse(job), 0, 0)
    assert {"name": "ringleader-checkpoint", "mountPath": "/ckpt"} in pod["spec"]["containers"][0][
        "volumeMounts"
    ]
    assert env_map(pod)["RINGLEADER_CHECKPOINT_DIR"] == "/ckpt"
    assert env_map(pod)["RINGLEADER_CHECKPOINT_KEEP"] == "5"


def test_host_network_switches_dns_policy_so_cluster_names_still_resolve() -> None:
    spec = builders.build_worker_pod(
        parse(make_job(spec={"networking": {"hostNetwork": True}})), 0, 0
    )["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_scheduling_overrides_the_templates_scheduler_and_priority() -> None:
    job = make_job(spec={"scheduling": {"schedulerName": "volcano", "priorityClassName": "high"}})
    job["spec"]["template"]["spec"]["schedulerName"] = "default-scheduler"
    spec = builders.build_worker_pod(parse(job), 0, 0)["spec"]
    assert (spec["schedulerName"], spec["priorityClassName"]) == ("volcano", "high")


def test_building_does_not_mutate_the_job() -> None:
    job = with_container(make_job(), env=[{"name": "A", "value": "1"}])
    before = copy.deepcopy(job)
    builders.build_worker_pods(parse(job), 0)
    builders.build_rendezvous_pod(parse(job))
    assert job == before


def test_dict_and_model_inputs_build_the_same_pod() -> None:
    job = make_job()
    assert builders.build_worker_pod(parse(job), 1, 0, "x7k2p") == builders.build_worker_pod(
        parse(job), 1, 0, "x7k2p"
    )


def test_workers_service_is_headless_and_selects_every_pod_of_the_job() -> None:
    svc = builders.build_workers_service(parse(make_job()))
    assert svc["metadata"]["name"] == "digits-workers"
    assert svc["metadata"]["ownerReferences"] == [OWNER]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"ringleader.dev/job-name": "digits"}
    assert [p["port"] for p in svc["spec"]["ports"]] == [PROGRESS_PORT, 29400]


def test_the_rendezvous_is_a_host_in_the_workers_subdomain() -> None:
    job = parse(make_job())
    svc, pod = builders.build_workers_service(job), builders.build_rendezvous_pod(job)
    worker = builders.build_worker_pod(job, 0, 0, "t0")
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= worker["metadata"]["labels"].items()
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("digits-rdzv", "digits-workers")
    assert naming.rendezvous_address("digits", "team-a") == STORE
    assert rendezvous.endpoint(job) == f"{STORE}:29400"


def test_a_job_an_older_operator_started_keeps_its_rendezvous_service_and_name() -> None:
    # Its workers were told <job>-rdzv.<ns>.svc, the name of a Service of the rendezvous's own;
    # a replacement must meet them there.
    body = make_job()
    body["status"] = {"phase": "Running", "restartAttempt": 0}
    job = parse(body)
    old = "digits-rdzv.team-a.svc:29400"
    assert rendezvous.has_own_service(job) and rendezvous.endpoint(job) == old
    env = {e["name"]: e.get("value") for e in workerenv.build_contract_env(job, 1, 0)}
    assert env["PET_RDZV_ENDPOINT"] == old
    svc = builders.build_rendezvous_service(job)
    pod = builders.build_rendezvous_pod(job)
    assert svc["metadata"]["name"] == pod["metadata"]["name"] == "digits-rdzv"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"][0]["port"] == 29400
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    # Once recorded, the status says which: a new job's own endpoint is not the old one.
    body["status"]["rendezvousEndpoint"] = f"{STORE}:29400"
    assert not rendezvous.has_own_service(parse(body))


def test_the_rendezvous_pod_runs_its_program_in_the_workers_image_with_python3_and_torch() -> None:
    job = with_container(make_job(), imagePullPolicy="Never")
    job["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
    pod = builders.build_rendezvous_pod(parse(job))
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ringleader-trainer:0.1.0"
    assert container["imagePullPolicy"] == "Never"
    assert container["command"] == ["python3", "-c", rendezvous.SERVER, "29400"]
    assert "ringleader" not in rendezvous.SERVER.replace("ringleader:", "")  # nothing of ours
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["ownerReferences"] == [OWNER]
    assert pod["metadata"]["labels"]["ringleader.dev/role"] == "rendezvous"


def test_the_rendezvous_pod_runs_on_the_nodes_the_workers_are_restricted_to() -> None:
    job = make_job()
    job["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "a100"}
    job["spec"]["template"]["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    spec = builders.build_rendezvous_pod(parse(job))["spec"]
    assert spec["nodeSelector"] == {"pool": "a100"}
    assert spec["tolerations"][0] == {"key": "gpu", "operator": "Exists"}


def test_checkpoint_claim_is_built_only_for_a_size() -> None:
    assert builders.build_checkpoint_claim(parse(make_job())) is None
    assert (
        builders.build_checkpoint_claim(parse(make_job(spec={"checkpoint": {"claimName": "c"}})))
        is None
    )
    spec = {"checkpoint": {"size": "50Gi", "storageClassName": "nfs"}}
    claim = builders.build_checkpoint_claim(parse(make_job(spec=spec)))
    assert claim is not None
    assert claim["metadata"]["name"] == "digits-checkpoint"
    assert claim["metadata"]["ownerReferences"] == [OWNER]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "50Gi"}},
        "storageClassName": "nfs",
    }


def test_worker_selector_string_matches_the_worker_labels() -> None:
    selector = naming.worker_selector_string("digits")
    assert selector == "ringleader.dev/job-name=digits,ringleader.dev/role=worker"
    labels = naming.worker_labels("digits", 0, 0)
    assert all(labels[k] == v for k, v in (p.split("=") for p in selector.split(",")))


def test_pods_get_no_service_account_token_unless_the_template_asks_for_one() -> None:
    assert (
        builders.build_worker_pod(parse(make_job()), 0, 0)["spec"]["automountServiceAccountToken"]
        is False
    )
    assert (
        builders.build_rendezvous_pod(parse(make_job()))["spec"]["automountServiceAccountToken"]
        is False
    )
    asks = make_job()
    asks["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    assert builders.build_worker_pod(parse(asks), 0, 0)["spec"]["automountServiceAccountToken"]
