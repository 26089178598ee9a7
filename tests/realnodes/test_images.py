"""The locally built images run on real nodes: trainer, user (torch only) and operator."""

from __future__ import annotations

import json

from tests.harness import LocalNodes
from tests.kube import Kube
from tests.realnodes.conftest import pod, terminated

REPORT = """
import importlib.util, json, os
found = {name: importlib.util.find_spec(name) is not None
         for name in ("torch", "ringleader_trainer", "ringleader")}
print(json.dumps({"uid": os.getuid(), **found}))
"""


def _run(kube: Kube, namespace: str, name: str, image: str, node: str) -> dict[str, object]:
    """Run REPORT in the image on node; return what it printed."""
    command = ["python", "-c", REPORT]
    kube.apply(pod(name, image, command, nodeName=node), namespace)
    state = terminated(kube, namespace, name)
    log = kube.run("logs", "-n", namespace, name)
    assert state["exitCode"] == 0, log
    result: dict[str, object] = json.loads(log.splitlines()[-1])
    return result


def test_the_trainer_image_has_torch_and_the_trainer_and_runs_as_its_own_user(
    kube: Kube, namespace: str, local_nodes: LocalNodes
) -> None:
    node = local_nodes.names[0]  # a torch image takes about a minute to import into a node
    image = local_nodes.image("trainer", on=[node])
    command = ["python", "-c", "import torch, ringleader_trainer; print(torch.__version__)"]
    # The image's entry point is the launcher; `command` replaces it as a pod spec would.
    kube.apply(pod("imports", image, command, nodeName=node), namespace)
    assert terminated(kube, namespace, "imports")["exitCode"] == 0
    assert kube.run("logs", "-n", namespace, "imports").strip().startswith("2.")
    report = _run(kube, namespace, "report", image, node)
    assert report == {"uid": 1000, "torch": True, "ringleader_trainer": True, "ringleader": False}


def test_the_user_image_has_torch_and_nothing_of_ringleader(
    kube: Kube, namespace: str, local_nodes: LocalNodes
) -> None:
    node = local_nodes.names[0]
    image = local_nodes.image("user", on=[node])
    report = _run(kube, namespace, "user", image, node)
    assert report == {"uid": 0, "torch": True, "ringleader_trainer": False, "ringleader": False}


def test_the_operator_image_has_the_operator_and_runs_as_non_root(
    kube: Kube, namespace: str, local_nodes: LocalNodes
) -> None:
    node = local_nodes.names[0]
    image = local_nodes.image("operator", on=[node])
    report = _run(kube, namespace, "operator", image, node)
    assert report == {"uid": 65532, "torch": False, "ringleader_trainer": False, "ringleader": True}
