"""Core Kubernetes schemas from the OpenAPI document, translated into CRD structural schemas.

The API server accepts a narrower dialect in CRDs than its own OpenAPI uses: no $ref/allOf, every
node typed, int-or-string spelled as x-kubernetes-int-or-string, no patch-strategy extensions,
and list-map keys that are required or defaulted. This module does that translation.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

KUBERNETES_MODULE = "k8s.io/kubernetes@v1.36.3"
OPENAPI_IN_MODULE = "api/openapi-spec/v3/api__v1_openapi.json"
# A copy of the schemas reachable from PodTemplateSpec, so generating the CRD needs no Go cache.
VENDORED = Path(__file__).with_name("openapi_core_v1.json")
REF_PREFIX = "#/components/schemas/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# Kept as they are; everything else (description, default, patch strategies, unions) is dropped:
# the descriptions alone would push the CRD past kubectl's client-side apply limit (256 KiB).
_KEPT_KEYS = (
    "type",
    "format",
    "enum",
    "required",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
)
_CRD_FORMATS = frozenset({"int32", "int64", "date-time", "byte", "double", "float"})
_STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
# A nested ObjectMeta in a template is only ever read for labels and annotations.
_TEMPLATE_META: Schema = {
    "type": "object",
    "properties": {"labels": _STRING_MAP, "annotations": _STRING_MAP},
}


def find_openapi_document() -> Path:
    """Locate the Kubernetes OpenAPI v3 core/v1 document in the Go module cache."""
    cache = os.environ.get("GOMODCACHE")
    if not cache:
        cache = subprocess.run(
            ["go", "env", "GOMODCACHE"], check=True, capture_output=True, text=True
        ).stdout.strip()
    return Path(cache) / KUBERNETES_MODULE / OPENAPI_IN_MODULE


def extract_reachable(document: Schema, root: str) -> dict[str, Schema]:
    """The named schemas reachable from root, in discovery order (deterministic)."""
    schemas: dict[str, Schema] = document["components"]["schemas"]
    found: dict[str, Schema] = {}
    pending = [root]
    while pending:
        name = pending.pop(0)
        if name in found:
            continue
        found[name] = schemas[name]
        pending.extend(_refs_in(schemas[name]))
    return found


def _refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        refs = [node["$ref"].removeprefix(REF_PREFIX)] if "$ref" in node else []
        return refs + [r for value in node.values() for r in _refs_in(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs_in(value)]
    return []


def load_vendored() -> dict[str, Schema]:
    """The vendored core/v1 schemas (see `python -m ringleader.crdgen --refresh-openapi`)."""
    data: dict[str, Schema] = json.loads(VENDORED.read_text())["schemas"]
    return data


def translate(schemas: dict[str, Schema], name: str, path: str = "") -> Schema:
    """The named schema as an inline CRD structural schema."""
    if name == OBJECT_META:
        return copy.deepcopy(_TEMPLATE_META)  # a fresh copy: callers may extend it
    return _translate_node(schemas, schemas[name], path or name)


def _translate_node(schemas: dict[str, Schema], node: Schema, path: str) -> Schema:
    node = _inline_refs(schemas, node)
    if node.get("format") == "int-or-string":
        return {"x-kubernetes-int-or-string": True}
    if "oneOf" in node:  # only Quantity uses oneOf (string | number) in core/v1
        return {"x-kubernetes-int-or-string": True}
    out: Schema = {k: node[k] for k in _KEPT_KEYS if k in node}
    if "format" in out and out["format"] not in _CRD_FORMATS:
        del out["format"]
    if "properties" in node:
        out["properties"] = {
            key: _translate_node(schemas, value, f"{path}.{key}")
            for key, value in node["properties"].items()
        }
    if "items" in node:
        out["items"] = _translate_node(schemas, node["items"], f"{path}[]")
        _default_list_map_keys(_inline_refs(schemas, node["items"]), out)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _translate_node(
            schemas, node["additionalProperties"], f"{path}{{}}"
        )
    if "type" not in out:
        raise ValueError(f"{path}: untyped schema node has no CRD equivalent")
    return out


def _inline_refs(schemas: dict[str, Schema], node: Schema) -> Schema:
    """Merge a $ref or a single-element allOf[$ref] into the node that points to it."""
    ref = node.get("$ref")
    if ref is None and len(node.get("allOf", [])) == 1:
        ref = node["allOf"][0].get("$ref")
    if ref is None:
        return node
    name = ref.removeprefix(REF_PREFIX)
    if name == OBJECT_META:
        return _TEMPLATE_META
    siblings = {k: v for k, v in node.items() if k not in ("$ref", "allOf")}
    return {**schemas[name], **siblings}


def _default_list_map_keys(items_source: Schema, out: Schema) -> None:
    # CRDs require every list-map key to be required or defaulted, so here (and only here) the
    # upstream default is kept, e.g. ports[].protocol: TCP.
    required = set(out["items"].get("required", []))
    for key in out.get("x-kubernetes-list-map-keys", []):
        default = items_source.get("properties", {}).get(key, {}).get("default")
        if key not in required and default is not None:
            out["items"]["properties"][key]["default"] = default
