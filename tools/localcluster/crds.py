"""The CustomResourceDefinitions an optional scheduler brings, read from its cached YAML files."""

from __future__ import annotations

from pathlib import Path

import yaml


def resource_names(directory: Path) -> list[str]:
    """`plural.group` of every CRD in the directory's YAML files, for kubectl."""
    names = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                spec = document["spec"]
                names.append(f"{spec['names']['plural']}.{spec['group']}")
    return names
