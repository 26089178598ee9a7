"""Models, examples and invalid manifests: what users write is read as they meant it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ringleader import builders, validation
from ringleader.models import DistributedTrainingJob
from tests.unit.operator.jobs import (
    EXAMPLES,
    INVALID_MANIFESTS,
    INVALID_UPDATES,
    REPO_ROOT,
    load_yaml,
    make_job,
    parse,
    with_container,
)

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
INVALID_FILES = sorted(INVALID_MANIFESTS.glob("*.yaml"))
UPDATE_FILES = sorted(INVALID_UPDATES.glob("*.yaml"))
# Refused only by the core pod schema, which the models do not duplicate.
CORE_SCHEMA_ONLY = {"container-name-missing"}


def expected_field(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect-field: "), f"{path.name}: first line names the field"
    return first.removeprefix("# expect-field: ")


def test_the_examples_exist() -> None:
    assert [p.name for p in EXAMPLE_FILES] == [
        "deepspeed-job.yaml",
        "digits-job.yaml",
        "elastic-job.yaml",
        "gpu-job.yaml",
        "hf-trainer-job.yaml",
        "tensorflow-job.yaml",
        "torchrun-script-job.yaml",
    ]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_parses_and_passes_validation(path: Path) -> None:
    job = parse(load_yaml(path))
    assert validation.validate_job(job) == []
    assert builders.build_worker_pods(job, attempt=0)


def test_smallest_example_runs_two_cpu_workers_of_the_digits_workload() -> None:
    job = parse(load_yaml(EXAMPLES / "digits-job.yaml"))
    assert job.spec.replicas == 2 and job.spec.elastic is None
    command = job.spec.template["spec"]["containers"][0]
    assert command["command"] == ["python", "-m", "ringleader_trainer.launch"]
    assert "digits" in command["args"]
    assert "nvidia.com/gpu" not in str(command.get("resources"))


def test_elastic_example_ranges_from_two_to_four() -> None:
    job = parse(load_yaml(EXAMPLES / "elastic-job.yaml"))
    assert job.spec.elastic is not None
    assert (job.spec.elastic.min_replicas, job.spec.elastic.max_replicas) == (2, 4)


def test_gpu_example_runs_eight_processes_per_pod() -> None:
    pod = builders.build_worker_pod(parse(load_yaml(EXAMPLES / "gpu-job.yaml")), 1, 0)
    env = {v["name"]: v.get("value") for v in pod["spec"]["containers"][0]["env"]}
    assert (env["PET_NPROC_PER_NODE"], env["RANK"], env["NCCL_DEBUG"]) == ("8", "8", "INFO")


def test_the_deepspeed_example_mounts_the_config_maps_its_header_creates_with_zero_2() -> None:
    path = EXAMPLES / "deepspeed-job.yaml"
    header = path.read_text().replace("\\\n#", "").splitlines()
    created = {
        words[3]: words[4:]
        for words in (line.lstrip("# ").split() for line in header)
        if words[:3] == ["kubectl", "create", "configmap"]
    }
    volumes = parse(load_yaml(path)).spec.template["spec"]["volumes"]
    assert sorted(v["configMap"]["name"] for v in volumes) == sorted(created)
    # Every file the header puts in a ConfigMap exists; the config asks for ZeRO stage 2 and
    # torch's AdamW (DeepSpeed's CPU Adam is an op the deepspeed image does not build).
    files = [arg.rpartition("=")[2] for args in created.values() for arg in args]
    assert all((REPO_ROOT / name).is_file() for name in files), files
    [config_file] = [name for name in files if name.endswith(".json")]
    config = json.loads((REPO_ROOT / config_file).read_text())
    assert config["zero_optimization"]["stage"] == 2
    assert config["optimizer"]["params"]["torch_adam"] is True


def test_wire_names_are_camel_case_and_round_trip() -> None:
    job = make_job(spec={"nprocPerNode": 2, "checkpoint": {"claimName": "c"}})
    model = parse(job)
    assert model.spec.checkpoint is not None and model.spec.checkpoint.claim_name == "c"
    dumped = model.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["nprocPerNode"] == 2
    assert dumped["spec"]["checkpoint"]["mountPath"] == "/checkpoints"


@pytest.mark.parametrize(("size", "parsed"), [(10, "10"), ("1Gi", "1Gi"), ("500M", "500M")])
def test_a_quantity_may_be_written_as_a_number_or_a_string(size: Any, parsed: str) -> None:
    model = parse(make_job(spec={"checkpoint": {"size": size}}))
    assert model.spec.checkpoint is not None and model.spec.checkpoint.size == parsed


def test_there_are_at_least_twelve_invalid_manifests_each_naming_its_field() -> None:
    assert len(INVALID_FILES) >= 12
    for path in [*INVALID_FILES, *UPDATE_FILES]:
        assert expected_field(path)


# tests/integration/test_job_validation.py applies every file, these too, to a real API server.
MODEL_CHECKABLE_FILES = [path for path in INVALID_FILES if path.stem not in CORE_SCHEMA_ONLY]


@pytest.mark.parametrize("path", MODEL_CHECKABLE_FILES, ids=lambda p: p.stem)
def test_invalid_manifest_is_refused_by_the_models_or_the_validator(path: Path) -> None:
    doc = load_yaml(path)
    try:
        job = DistributedTrainingJob.model_validate(doc)
    except ValidationError:
        return
    problems = validation.validate_job(job)
    assert problems, f"{path.name} was accepted"
    field = expected_field(path)
    assert any(field in p for p in problems), problems


@pytest.mark.parametrize("path", UPDATE_FILES, ids=lambda p: p.stem)
def test_invalid_update_starts_from_a_valid_job_and_changes_the_named_field(path: Path) -> None:
    before, after = yaml.safe_load_all(path.read_text())
    parse(before)
    field = expected_field(path).removeprefix("spec.")
    assert before["spec"].get(field) != after["spec"].get(field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"env": [{"name": "RANK", "value": "0"}]}, "containers[0].env[0].name: RANK"),
        ({"volumeMounts": [{"name": "v", "mountPath": "/checkpoints/"}]}, "volumeMounts[0]"),
        ({"image": ""}, "containers[0].image"),
    ],
)
def test_validator_names_the_container_field_at_fault(change: dict[str, Any], field: str) -> None:
    problems = validation.validate_job(parse(with_container(make_job(), **change)))
    assert len(problems) == 1 and field in problems[0]


@pytest.mark.parametrize(
    ("pod_spec", "field"),
    [
        ({"restartPolicy": "OnFailure"}, "spec.template.spec.restartPolicy"),
        ({"volumes": [{"name": "ringleader-x", "emptyDir": {}}]}, "volumes[0].name"),
        ({"containers": []}, "spec.template.spec.containers"),
    ],
)
def test_validator_names_the_pod_field_at_fault(pod_spec: dict[str, Any], field: str) -> None:
    job = make_job()
    job["spec"]["template"]["spec"].update(pod_spec)
    problems = validation.validate_job(parse(job))
    assert len(problems) == 1 and field in problems[0]
