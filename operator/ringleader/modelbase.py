"""What every model of the API shares: the base model (camelCase on the wire, unknown fields
refused), CEL rules, and the Kubernetes types the spec uses (quantities, names, the pod template).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

JsonDict = dict[str, Any]  # a JSON object (pydantic accepts it in json_schema_extra)

# Kubernetes' resource.Quantity syntax (the same pattern controller-gen emits).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# Where crdgen splices in a schema from the Kubernetes OpenAPI document instead of pydantic's.
OPENAPI_REF_KEY = "x-ringleader-openapi-ref"
POD_TEMPLATE_SPEC = "io.k8s.api.core.v1.PodTemplateSpec"


def rule(expr: str, message: str, field_path: str | None = None) -> JsonDict:
    """One CEL validation rule as the CRD's x-kubernetes-validations wants it."""
    out: JsonDict = {"rule": expr, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def _int_to_str(value: object) -> object:
    # YAML turns `size: 10` into an int; the API server keeps it as one (int-or-string).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_int_to_str),
    StringConstraints(pattern=QUANTITY_PATTERN),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        }
    ),
]

# `template` is typed as a plain dict here; crdgen replaces its schema with the real core/v1
# PodTemplateSpec, so the API server (not this model) checks the pod fields.
PodTemplate = Annotated[dict[str, Any], WithJsonSchema({OPENAPI_REF_KEY: POD_TEMPLATE_SPEC})]

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class ApiModel(BaseModel):
    """Base of every model: camelCase aliases, unknown fields refused, docstrings kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",  # mirrors the API server's strict field validation
        use_attribute_docstrings=True,
    )


def first_error(error: ValidationError) -> tuple[str, str]:
    """(field path, message) of a validation error's first problem, e.g.
    ("spec.elastic.minReplicas", "Input should be a valid integer")."""
    first = error.errors()[0]
    return _field_path(first["loc"]), first["msg"]


def _field_path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as a manifest's field path, e.g. spec.elastic.minReplicas."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_type_tag(part):
            out += f".{part}" if out else part
    return out


def _is_type_tag(part: str) -> bool:
    # pydantic names the branch of a union it tried (constrained-int, literal['auto']...): not
    # a field. Field names are camelCase, never with '-', '[' or a bare type name.
    return "-" in part or "[" in part or part in ("int", "str", "float", "bool")
