"""The Helm chart's files: the CRD is the generated one, the schema is closed, values documented."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "ringleader"
CRD_FILE = "ringleader.dev_distributedtrainingjobs.yaml"
# Kubernetes' own deep types, left open on purpose: the API server validates them.
OPEN_OBJECTS = {"affinity.nodeAffinity", "affinity.podAffinity", "affinity.podAntiAffinity"}
KEY_LINE = re.compile(r"^( *)([A-Za-z][\w.-]*):")

Schema = dict[str, Any]


def test_the_charts_crd_is_byte_for_byte_the_generated_one() -> None:
    chart_copy = (CHART / "files" / "distributedtrainingjobs.yaml").read_bytes()
    assert chart_copy == (REPO_ROOT / "crds" / CRD_FILE).read_bytes()


def walk_objects(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every object-typed node of a JSON schema, with its dotted path."""
    if schema.get("type") == "object":
        yield path, schema
    for key, child in (schema.get("properties") or {}).items():
        yield from walk_objects(child, f"{path}.{key}".lstrip("."))
    for nested in ("items", "additionalProperties"):
        child = schema.get(nested)
        if isinstance(child, dict):
            yield from walk_objects(child, f"{path}[]")


@pytest.fixture(scope="module")
def schema() -> Schema:
    loaded: Schema = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def test_every_object_in_the_values_schema_refuses_unknown_keys(schema: Schema) -> None:
    for path, node in walk_objects(schema):
        closed = node.get("additionalProperties") is False
        typed_map = isinstance(node.get("additionalProperties"), dict)  # e.g. labels: str → str
        assert closed or typed_map or path in OPEN_OBJECTS, f"{path or '<root>'} is open"


def leaf_paths(values: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of every leaf value (an empty map or list counts as a leaf)."""
    if isinstance(values, dict) and values:
        for key, child in values.items():
            yield from leaf_paths(child, f"{path}.{key}".lstrip("."))
    else:
        yield path


def schema_at(schema: Schema, path: str) -> Schema | None:
    """The sub-schema for a dotted values path, or None when the schema has no such key."""
    node: Schema | None = schema
    for key in path.split("."):
        if node is None:
            return None
        mapped = node.get("additionalProperties")
        node = node.get("properties", {}).get(key, mapped if isinstance(mapped, dict) else None)
    return node


def test_every_value_in_values_yaml_is_in_the_schema(schema: Schema) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in leaf_paths(values):
        assert schema_at(schema, path) is not None, f"{path} is missing from values.schema.json"


def documented_paths(text: str) -> Iterator[tuple[str, bool]]:
    """(dotted key path, whether a comment sits right above the key) for each key line."""
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in text.splitlines():
        match = KEY_LINE.match(line)
        if match:
            indent, key = len(match.group(1)), match.group(2)
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
            yield ".".join(k for _, k in stack), previous.lstrip().startswith("#")
        if line.strip():
            previous = line


def test_every_value_is_documented_by_a_comment_on_it_or_its_parent() -> None:
    found = dict(documented_paths((CHART / "values.yaml").read_text()))
    assert found, "no keys found in values.yaml"
    leaves = [p for p in found if not any(other.startswith(f"{p}.") for other in found)]
    for path in leaves:
        prefixes = [".".join(path.split(".")[: n + 1]) for n in range(path.count(".") + 1)]
        assert any(found.get(prefix) for prefix in prefixes), f"{path} has no comment"


def test_the_operator_image_runs_as_a_numeric_non_root_user() -> None:
    dockerfile = (REPO_ROOT / "operator" / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0"
    assert 'ENTRYPOINT ["python", "-m", "ringleader"]' in dockerfile


def test_the_trainer_image_installs_the_torch_the_tests_ran_with() -> None:
    dockerfile = (REPO_ROOT / "trainer-image" / "Dockerfile").read_text()
    pins = (REPO_ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^torch==\d+\.\d+\.\d+$", pins, re.MULTILINE), "torch is not pinned"
    assert "pip install --constraint requirements-dev.txt ./client ./trainer-image" in dockerfile
    installs = re.findall(r"pip install (.*)", dockerfile)
    assert not any("torch" in line for line in installs), "torch installed past the pin"
    # python:3.11-slim unless the build names another base (the local cluster's Debian one).
    assert "ARG BASE_IMAGE=python:3.11-slim\n" in dockerfile
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE) == ["${BASE_IMAGE}"]
    assert 'ENTRYPOINT ["python", "-m", "ringleader_trainer.launch"]' in dockerfile
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user and user[-1] != "0"
