"""listwatch against a real API server: PodGroups seen while their CRD exists; the CRD
deleted under the watch (a gang scheduler uninstalled) and installed again: the watch waits,
then sees them again. The thread never ends on its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from ringleader import gang
from ringleader.kube import KubeApi, Selection, connect
from ringleader.listwatch import ListWatch, Source
from tests.integration.test_gang import CRD
from tests.kube import Kube, wait_until

CRD_NAME = "podgroups.scheduling.x-k8s.io"


class Seen:
    """What the watch delivered, by name, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str | None, str]] = []

    def deliver(self, kind: str | None, objs: list[dict[str, Any]]) -> None:
        with self.lock:
            self.events += [(kind, obj["metadata"]["name"]) for obj in objs]

    def saw(self, name: str) -> bool:
        with self.lock:
            return any(seen == name for _, seen in self.events)


def install_crd(kube: Kube, namespace: str) -> None:
    kube.apply(yaml.safe_load(CRD.read_text()), namespace)
    kube.run("wait", "--for=condition=Established", f"crd/{CRD_NAME}")


def pod_group(name: str) -> dict[str, Any]:
    return {
        "apiVersion": gang.COSCHEDULING.api_version,
        "kind": "PodGroup",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ringleader"}},
        "spec": {"minMember": 1},
    }


@pytest.fixture
def watching(kube: Kube, namespace: str) -> Iterator[tuple[Seen, threading.Thread]]:
    api = KubeApi(connect(str(kube.kubeconfig)))
    where = Selection(
        gang.COSCHEDULING.api_version, "podgroups", namespace,
        "app.kubernetes.io/managed-by=ringleader",
    )  # fmt: skip
    seen = Seen()
    source = Source(
        CRD_NAME,
        lambda: api.list_objects(where),
        lambda since: api.watch_objects(where, since),
    )
    watch = ListWatch(source, seen.deliver, idle_seconds=1, backoff=1)
    thread = watch.start()
    try:
        yield seen, thread
    finally:
        watch.stop()
        kube.run("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true")


def test_pod_groups_are_seen_again_after_their_api_went_and_came_back(
    kube: Kube, namespace: str, watching: tuple[Seen, threading.Thread]
) -> None:
    seen, thread = watching
    install_crd(kube, namespace)
    kube.apply(pod_group("first"), namespace)
    wait_until(lambda: seen.saw("first"), timeout=30, what="the first PodGroup seen")
    kube.run("delete", "crd", CRD_NAME, "--wait=true")
    wait_until(lambda: ("DELETED", "first") in seen.events, timeout=30, what="its deletion seen")
    assert thread.is_alive()
    install_crd(kube, namespace)
    kube.apply(pod_group("second"), namespace)
    wait_until(lambda: seen.saw("second"), timeout=30, what="a PodGroup of the API back")
    assert thread.is_alive()
