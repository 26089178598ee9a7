"""The agent's Node objects: registration, Lease renewal and status heartbeats."""

from __future__ import annotations

import datetime
import logging
import platform
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from .config import (
    AGENT_VERSION,
    HEARTBEAT_SECONDS,
    LOCAL_POOL,
    NODE_CAPACITY,
    NODE_LEASE_SECONDS,
    NODE_POOL_LABEL,
)
from .kubeapi import MERGE_PATCH
from .podstatus import now_rfc3339

log = logging.getLogger(__name__)
LEASE_NAMESPACE = "kube-node-lease"


def build_node_status(address: str, now: str) -> dict[str, Any]:
    """Capacity, addresses and healthy conditions with fresh heartbeats."""
    healthy = [
        ("Ready", "True", "KubeletReady", "ringleader local node agent is posting ready status"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
        ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
    ]
    conditions = [
        {"type": kind, "status": status, "reason": reason, "message": message,
         "lastHeartbeatTime": now, "lastTransitionTime": now}
        for kind, status, reason, message in healthy
    ]  # fmt: skip
    return {
        "capacity": dict(NODE_CAPACITY),
        "allocatable": dict(NODE_CAPACITY),
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": address}],
        "nodeInfo": {
            "architecture": "amd64" if platform.machine() == "x86_64" else platform.machine(),
            "operatingSystem": "linux",
            "kubeletVersion": AGENT_VERSION,
            "kernelVersion": platform.release(),
            "osImage": "host processes (ringleader local node agent)",
            "containerRuntimeVersion": "local://processes",
            "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "",
        },
    }  # fmt: skip


def build_node(name: str, address: str) -> dict[str, Any]:
    """A Node without kwok's annotation (kwok ignores it), in the `local` pool."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        NODE_POOL_LABEL: LOCAL_POOL,
        "type": "local",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": build_node_status(address, now_rfc3339()),
    }


def build_lease(name: str, node_uid: str) -> dict[str, Any]:
    """The node's heartbeat Lease, owned by the Node so it goes when the Node does."""
    renew = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": NODE_LEASE_SECONDS,
            "renewTime": renew,
        },
    }


def vanished_nodes(uids: dict[str, str], seen: set[str], present: set[str]) -> list[str]:
    """The served nodes whose Node object, once seen in the API, is there no more."""
    return sorted(name for name, uid in uids.items() if uid in seen and uid not in present)


class NodeKeeper:
    """Registers the nodes and keeps them Ready until stopped; a deleted node stays lost until
    registered again."""

    def __init__(self, api_client: client.ApiClient, names: list[str], address: str) -> None:
        self.core = client.CoreV1Api(api_client)
        self.leases = client.CoordinationV1Api(api_client)
        self.names, self.address = names, address
        self.uids: dict[str, str] = {}
        self.lost: set[str] = set()  # deleted from the API: no heartbeats, no pods

    def register(self) -> None:
        """Create each Node, or take over an existing one of that name."""
        for name in self.names:
            self.register_node(name)

    def register_node(self, name: str) -> None:
        """Create the Node (or take over one of that name) and post its status."""
        body = build_node(name, self.address)
        try:
            node = self.core.create_node(body)
        except ApiException as error:
            if error.status != 409:
                raise
            patch = {"metadata": {"labels": body["metadata"]["labels"]}}
            node = self.core.patch_node(name, patch, _content_type=MERGE_PATCH)
        self.uids[name] = node.metadata.uid
        self.lost.discard(name)
        self._beat_node(name, build_node_status(self.address, now_rfc3339()))

    def lose(self, name: str) -> None:
        """Stop beating a node whose Node object was deleted."""
        self.lost.add(name)

    def _renew_lease(self, name: str) -> None:
        body = build_lease(name, self.uids[name])
        try:
            self.leases.patch_namespaced_lease(
                name, LEASE_NAMESPACE, {"spec": body["spec"]}, _content_type=MERGE_PATCH
            )
        except ApiException as error:
            if error.status != 404:
                raise
            self.leases.create_namespaced_lease(LEASE_NAMESPACE, body)

    def beat(self) -> None:
        """Renew the Lease and post the status of every node not lost, once."""
        status = build_node_status(self.address, now_rfc3339())
        for name in self.names:
            if name not in self.lost:
                self._beat_node(name, status)

    def _beat_node(self, name: str, status: dict[str, Any]) -> None:
        self._renew_lease(name)
        self.core.patch_node_status(name, {"status": status}, _content_type=MERGE_PATCH)

    def run(self, stop: threading.Event) -> None:
        """Heartbeat until stop is set; errors are logged and retried next period."""
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                self.beat()
            except Exception as error:
                log.warning("node heartbeat failed: %s", error)

    def unregister(self) -> None:
        """Delete the Nodes (their Leases follow by garbage collection)."""
        for name in self.names:
            try:
                self.core.delete_node(name)
            except ApiException as error:
                if error.status != 404:
                    raise
