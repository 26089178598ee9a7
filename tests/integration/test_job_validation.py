"""Bad manifests are refused by the API server at apply time, with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.kube import Kube, KubectlError

MANIFESTS = Path(__file__).resolve().parents[1] / "unit" / "operator"
INVALID = sorted((MANIFESTS / "invalid_manifests").glob("*.yaml"))
INVALID_UPDATES = sorted((MANIFESTS / "invalid_updates").glob("*.yaml"))


def _expected_field(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect-field: "), path
    return first.removeprefix("# expect-field: ").strip()


def _field_in(field: str, message: str) -> bool:
    # The API server words paths as spec.template.spec.containers[0].env[0].name.
    return field in message or field.replace("[", ".").replace("]", "") in message


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_an_invalid_manifest_is_refused_with_its_field_named(
    kube: Kube, crd: str, namespace: str, path: Path
) -> None:
    with pytest.raises(KubectlError) as refused:
        kube.run("apply", "-n", namespace, "-f", str(path))
    message = str(refused.value)
    assert _field_in(_expected_field(path), message), message
    assert kube.run("get", "dtj", "-n", namespace, "-o", "name").strip() == ""


@pytest.mark.parametrize("path", INVALID_UPDATES, ids=lambda p: p.stem)
def test_an_invalid_update_is_refused_and_the_job_stays_as_it_was(
    kube: Kube, crd: str, namespace: str, path: Path
) -> None:
    original, update = yaml.safe_load_all(path.read_text())
    kube.apply(original, namespace)
    name = original["metadata"]["name"]
    before = kube.get("dtj", name, namespace=namespace)
    with pytest.raises(KubectlError) as refused:
        kube.apply(update, namespace)
    assert _field_in(_expected_field(path), str(refused.value)), str(refused.value)
    after = kube.get("dtj", name, namespace=namespace)
    # The spec and its generation, not the resourceVersion: an operator running in the same
    # session may write the job's status meanwhile.
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_what_running_workers_depend_on_changes_while_suspended_and_the_rest_at_any_time(
    kube: Kube, crd: str, namespace: str
) -> None:
    original = MANIFESTS / "invalid_updates" / "gang-added-while-running.yaml"
    job = next(yaml.safe_load_all(original.read_text()))
    kube.apply(job, namespace)
    job["spec"]["scheduling"] = {"startupTimeoutSeconds": 600}  # not a thing workers depend on
    kube.apply(job, namespace)
    job["spec"]["runPolicy"] = {"suspend": True}
    job["spec"]["scheduling"] = {"gang": True, "schedulerName": "volcano"}
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "ringleader-trainer:0.2.0"
    kube.apply(job, namespace)
    spec = kube.get("dtj", "bad", namespace=namespace)["spec"]
    assert spec["scheduling"] == {"gang": True, "schedulerName": "volcano"}
    assert spec["template"]["spec"]["containers"][0]["image"] == "ringleader-trainer:0.2.0"
