"""The generated CRD: up to date, structural, with its rules, columns and subresources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from ringleader import constants as c
from ringleader import crdgen
from ringleader import models as m

Schema = dict[str, Any]


@pytest.fixture(scope="module")
def crd() -> Schema:
    return crdgen.build_crd()


@pytest.fixture(scope="module")
def root(crd: Schema) -> Schema:
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def at(schema: Schema, path: str) -> Schema:
    """The sub-schema at a dotted path; `[]` steps into list items."""
    node = schema
    for part in path.split("."):
        name, items = part.removesuffix("[]"), part.endswith("[]")
        node = node["properties"][name]
        if items:
            node = node["items"]
    return node


def walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_checked_in_crd_matches_a_fresh_generation() -> None:
    assert crdgen.CRD_PATH.read_text() == crdgen.render_crd(), "run `make crds`"


def test_generation_is_deterministic() -> None:
    assert crdgen.render_crd() == crdgen.render_crd()


def test_check_mode_fails_on_a_stale_file(tmp_path: Any) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text("stale\n")
    assert crdgen.main(["--check", "--output", str(stale)]) == 1
    crdgen.main(["--output", str(stale)])
    assert crdgen.main(["--check", "--output", str(stale)]) == 0


def test_rendered_yaml_has_no_anchors_and_parses_back_to_the_crd(crd: Schema) -> None:
    text = crdgen.render_crd()
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == crd


def test_names_scope_and_version(crd: Schema) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "distributedtrainingjobs.ringleader.dev"
    assert spec["group"] == "ringleader.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "DistributedTrainingJob"
    assert spec["names"]["shortNames"] == ["dtj"]
    assert [v["name"] for v in spec["versions"]] == ["v1alpha1"]
    assert spec["versions"][0]["served"] and spec["versions"][0]["storage"]


def test_status_and_scale_subresources_point_at_real_fields(crd: Schema, root: Schema) -> None:
    sub = crd["spec"]["versions"][0]["subresources"]
    assert sub["status"] == {}
    assert sub["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert at(root, "spec.replicas")["type"] == "integer"
    assert at(root, "status.replicas")["type"] == "integer"
    assert at(root, "status.selector")["type"] == "string"


@pytest.mark.parametrize(
    ("name", "kind", "json_path"),
    [
        ("Phase", "string", ".status.phase"),
        ("Workers", "string", ".status.workers"),
        ("Step", "integer", ".status.progress.step"),
        ("Restarts", "integer", ".status.restarts"),
        ("Last-Ckpt", "date", ".status.checkpoint.time"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ],
)
def test_printer_column_exists_with_its_path(
    crd: Schema, root: Schema, name: str, kind: str, json_path: str
) -> None:
    columns = {col["name"]: col for col in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns[name]["type"] == kind
    assert columns[name]["jsonPath"] == json_path
    assert columns[name].get("priority", 0) == 0
    if json_path.startswith(".status"):
        assert "type" in at(root, json_path.removeprefix("."))


def test_printer_columns_come_in_the_order_users_read_them(crd: Schema) -> None:
    names = [col["name"] for col in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert names[:6] == ["Phase", "Workers", "Step", "Restarts", "Last-Ckpt", "Age"]


def test_every_schema_node_is_typed(root: Schema) -> None:
    untyped = [
        path
        for path, node in walk(root)
        if "type" not in node and not node.get("x-kubernetes-int-or-string")
    ]
    assert untyped == []


@pytest.mark.parametrize(
    "key",
    ["$ref", "allOf", "oneOf", "not", "title", "x-kubernetes-preserve-unknown-fields", "$defs"],
)
def test_no_schema_node_uses_a_keyword_structural_schemas_forbid(root: Schema, key: str) -> None:
    assert [path for path, node in walk(root) if key in node] == []


def test_any_of_appears_only_as_int_or_string(root: Schema) -> None:
    int_or_string = [{"type": "integer"}, {"type": "string"}]
    offenders = [
        path
        for path, node in walk(root)
        if "anyOf" in node
        and not (node.get("x-kubernetes-int-or-string") and node["anyOf"] == int_or_string)
    ]
    assert offenders == []


def test_properties_and_additional_properties_never_share_a_node(root: Schema) -> None:
    both = [path for path, n in walk(root) if "properties" in n and "additionalProperties" in n]
    assert both == []


def test_list_map_keys_are_required_or_defaulted(root: Schema) -> None:
    missing = [
        f"{path}[].{key}"
        for path, node in walk(root)
        for key in node.get("x-kubernetes-list-map-keys", [])
        if key not in node["items"].get("required", [])
        and "default" not in node["items"]["properties"][key]
    ]
    assert missing == []


def test_worker_template_is_the_core_pod_template_not_a_free_form_object(root: Schema) -> None:
    template = at(root, "spec.template")
    assert template["type"] == "object"
    assert set(template["properties"]) == {"metadata", "spec"}
    container = at(root, "spec.template.spec.containers[]")
    assert container["required"] == ["name"]
    assert at(root, "spec.template.spec.containers[].ports[].protocol")["default"] == "TCP"
    assert at(root, "spec.template.spec.containers")["x-kubernetes-list-type"] == "map"
    limits = at(root, "spec.template.spec.containers[].resources.limits")
    assert limits["additionalProperties"]["x-kubernetes-int-or-string"] is True
    assert "ephemeralContainers" not in at(root, "spec.template.spec")["properties"]


def test_template_metadata_accepts_only_labels_and_annotations(root: Schema) -> None:
    meta = at(root, "spec.template.metadata")
    assert set(meta["properties"]) == {"labels", "annotations"}


@pytest.mark.parametrize(
    ("path", "bound"),
    [
        ("spec.template.spec.containers", "maxItems"),
        ("spec.template.spec.containers[].env", "maxItems"),
        ("spec.template.spec.containers[].env[].name", "maxLength"),
        ("spec.template.spec.volumes", "maxItems"),
        ("spec.template.spec.volumes[].name", "maxLength"),
    ],
)
def test_what_cel_iterates_over_is_bounded(root: Schema, path: str, bound: str) -> None:
    assert isinstance(at(root, path)[bound], int)


def rules_at(root: Schema, path: str) -> list[Schema]:
    node = root if path == "" else at(root, path)
    rules: list[Schema] = node.get("x-kubernetes-validations", [])
    return rules


@pytest.mark.parametrize(
    ("path", "rule", "field"),
    [
        ("", crdgen.NAME_LENGTH_RULE, "metadata.name"),
        ("", crdgen.NAME_DNS_RULE, "metadata.name"),
        ("spec", m.REPLICAS_IN_RANGE_RULE, "spec.replicas"),
        ("spec", m.ELASTIC_PRESENCE_RULE, "spec.elastic"),
        ("spec", m.CHECKPOINT_PRESENCE_RULE, "spec.checkpoint"),
        ("spec", m.TEMPLATE_IMMUTABLE_RULE, "spec.template"),
        ("spec.elastic", m.ELASTIC_RANGE_RULE, "spec.elastic.minReplicas"),
        ("spec.elastic", m.ELASTIC_IMMUTABLE_RULE, "spec.elastic"),
        ("spec.nprocPerNode", m.NPROC_RULE, "spec.nprocPerNode"),
        ("spec.nprocPerNode", m.NPROC_IMMUTABLE_RULE, "spec.nprocPerNode"),
        ("spec.checkpoint", m.CHECKPOINT_SOURCE_RULE, "spec.checkpoint"),
        ("spec.checkpoint", m.CHECKPOINT_CLAIM_OPTIONS_RULE, "spec.checkpoint.storageClassName"),
        ("spec.checkpoint", m.CHECKPOINT_IMMUTABLE_RULE, "spec.checkpoint"),
        ("spec.template.spec", crdgen.RESTART_POLICY_RULE, "spec.template.spec.restartPolicy"),
        ("spec.template.spec.containers[].env[]", crdgen.RESERVED_ENV_RULE, "containers[].env"),
        ("spec.template.spec.volumes[]", crdgen.RESERVED_VOLUME_RULE, "spec.template.spec.volumes"),
    ],
)
def test_cel_rule_is_present_with_a_message_naming_the_field(
    root: Schema, path: str, rule: Schema, field: str
) -> None:
    assert rule in rules_at(root, path)
    assert field in rule["message"]


def test_reserved_env_rule_lists_exactly_the_env_contract() -> None:
    expr = str(crdgen.RESERVED_ENV_RULE["rule"])
    inside = expr.split("[", 1)[1].split("]", 1)[0]
    listed = {name.strip(" '") for name in inside.split(",")}
    assert listed == set(c.ENV_CONTRACT)
    assert "self.name" in str(crdgen.RESERVED_ENV_RULE["messageExpression"])


def test_transition_rules_sit_only_where_old_values_can_be_correlated(root: Schema) -> None:
    # The API server forbids oldSelf under atomic lists; ours are all outside any list.
    inside_lists = [
        path
        for path, node in walk(root)
        if "[]" in path
        for r in node.get("x-kubernetes-validations", [])
        if "oldSelf" in r["rule"]
    ]
    assert inside_lists == []
