"""End-to-end tests on real nodes: the operator installed by its Helm chart, jobs in namespaces
that enforce the restricted Pod Security Standard, images built from the project's Dockerfiles.

And what every e2e test must also show: the operator names no straggler in a normal run (only a
test that slows a worker down on purpose, marked planted_straggler, may see one named)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.diagnosis import cluster_state
from tests.harness import InstalledOperator, LocalNodes
from tests.kube import Kube
from tools.localcluster.operatorchart import build_namespace

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_PACKAGE = REPO_ROOT / "client" / "ringleader_client"
NAMED = "straggler named in"  # the operator's log line when it names one (ringleader.poller)


def create_restricted_namespace(kube: Kube, name: str) -> None:
    """A namespace where only pods meeting the restricted Pod Security Standard are admitted."""
    kube.run("apply", "-f", "-", stdin=json.dumps(build_namespace(name)))


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A restricted namespace of its own for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    create_restricted_namespace(kube, name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def operator(installed_operator: InstalledOperator) -> InstalledOperator:
    """The e2e tests' operator is the one the chart installs in the cluster."""
    return installed_operator


@pytest.fixture(scope="session")
def trainer_image(local_nodes: LocalNodes) -> str:
    """The trainer image (torch, the trainer, the client library) on both training nodes."""
    return local_nodes.image("trainer")


@pytest.fixture(scope="session")
def user_image(local_nodes: LocalNodes) -> str:
    """The plain torch image, nothing of Ringleader in it, on both training nodes."""
    return local_nodes.image("user")


def client_zip() -> bytes:
    """The client library as a zip to put on PYTHONPATH: how a script in an image without it
    imports it (it needs only the standard library, and torch for its resume helpers)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(CLIENT_PACKAGE.rglob("*.py")):
            archive.write(path, path.relative_to(CLIENT_PACKAGE.parent))
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def no_straggler_named_in_a_normal_run(
    request: pytest.FixtureRequest, operator: InstalledOperator
) -> Iterator[None]:
    before = len(operator.log().splitlines())
    yield
    if request.node.get_closest_marker("planted_straggler"):
        return
    lines = operator.log().splitlines()[before:]  # a restarted pod's log starts afresh: fewer
    assert [line for line in lines if NAMED in line] == []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report also says what the cluster looked like (cluster_state), whatever
    it was waiting for."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    if report.when == "call" and report.failed and "kube" in funcargs and "namespace" in funcargs:
        state = cluster_state(funcargs["kube"], funcargs["namespace"])
        report.sections.append(("cluster when the test failed", state.replace("; ", "\n")))
    return report
