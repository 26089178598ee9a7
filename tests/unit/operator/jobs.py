"""Job manifests for the operator's unit tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ringleader.models import DistributedTrainingJob

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = REPO_ROOT / "examples"
HERE = Path(__file__).resolve().parent
INVALID_MANIFESTS = HERE / "invalid_manifests"
INVALID_UPDATES = HERE / "invalid_updates"

TRAINER = {"name": "trainer", "image": "ringleader-trainer:0.1.0"}


def make_job(spec: dict[str, Any] | None = None, name: str = "digits") -> dict[str, Any]:
    """A job as the API server returns it: two CPU workers unless spec says otherwise."""
    base: dict[str, Any] = {
        "replicas": 2,
        "template": {"spec": {"containers": [copy.deepcopy(TRAINER)]}},
    }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name, "namespace": "team-a", "uid": "uid-1", "generation": 3},
        "spec": {**base, **(spec or {})},
    }


def with_container(job: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The job with extra fields on its first container."""
    out = copy.deepcopy(job)
    out["spec"]["template"]["spec"]["containers"][0].update(fields)
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    """One YAML document."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def parse(job: dict[str, Any]) -> DistributedTrainingJob:
    """The job as the model."""
    return DistributedTrainingJob.model_validate(job)
