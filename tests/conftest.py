"""Session-wide fixtures: one local cluster per test session, a fresh namespace per test.

With RINGLEADER_USE_EXISTING_CLUSTER=1 the tests use the cluster $KUBECONFIG points at instead
of starting their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube import Kube
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import Layout, cached_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_PORT_BASE = 17400  # the test cluster's ports sit apart from the developer's (16400)


def _use_existing_cluster() -> bool:
    return os.environ.get("RINGLEADER_USE_EXISTING_CLUSTER") == "1"


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    """A kubectl wrapper bound to the test session's cluster (started here unless existing)."""
    if _use_existing_cluster():
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("RINGLEADER_USE_EXISTING_CLUSTER=1 needs KUBECONFIG")
        yield Kube(Path(kubeconfig))
        return
    layout = Layout(REPO_ROOT / ".cluster-test", cached_bin_dir(), TEST_PORT_BASE)
    cluster = LocalCluster(layout)
    cluster.destroy()  # leftovers of an interrupted session
    cluster.up()
    try:
        yield Kube(layout.kubeconfig)
    finally:
        cluster.destroy()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A namespace of its own for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.run("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)
