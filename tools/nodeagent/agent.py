"""The agent's loop: register nodes, watch pods and services, drive each local pod."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from . import network
from .config import Network, StateDir
from .hostsfile import render_hosts
from .ipam import AddressBook
from .kubeapi import Kube, connect
from .localpod import HostsRenderer, LocalPod, termination_path
from .mountpoints import Mountpoints
from .nodes import NodeKeeper, vanished_nodes
from .sandboxes import Context, clean_leftovers
from .watchcache import WatchCache

log = logging.getLogger(__name__)
TICK_SECONDS = 0.5
SHUTDOWN_GRACE_SECONDS = 10.0
FORGET_AFTER = 1000  # deleted uids remembered, so a stale cache entry is not run again


@dataclass(frozen=True)
class Settings:
    """Command-line settings."""

    kubeconfig: str
    state: StateDir
    nodes: list[str]
    network: Network
    unregister: bool = False


class Agent:
    """Runs the pods bound to its nodes until stop is set."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings, self.stop = settings, stop
        self.changed = threading.Event()
        api = connect_path(settings.kubeconfig)
        book = AddressBook(settings.state.ipam_file, settings.network.network)
        mountpoints = Mountpoints(settings.state.mountpoints_file)
        self.context = Context(Kube(api), settings.state, settings.network, book, mountpoints)
        core = client.CoreV1Api(connect_path(settings.kubeconfig))
        self.pod_cache = WatchCache(core.list_pod_for_all_namespaces, self.changed)
        self.service_cache = WatchCache(core.list_service_for_all_namespaces, self.changed)
        self.node_cache = WatchCache(core.list_node, self.changed)
        self.seen_nodes: set[str] = set()  # uids of our Node objects the watch has shown
        keeper_api = connect_path(settings.kubeconfig)
        self.keeper = NodeKeeper(keeper_api, settings.nodes, settings.network.gateway)
        self.pods: dict[str, LocalPod] = {}
        self.forgotten: dict[str, None] = {}

    def _spawn(self, target: Any, name: str) -> None:
        threading.Thread(target=target, args=(self.stop,), name=name, daemon=True).start()

    def start(self) -> None:
        """Clean up after a previous run, make the bridge, register nodes, start watching."""
        left = clean_leftovers(self.context)
        if left:
            log.info("removed leftovers of a previous run: %s", ", ".join(left))
        self.context.book.owners.clear()
        self.context.mountpoints.release(set())
        network.ensure_bridge(self.settings.network)
        self.keeper.register()
        self._spawn(self.keeper.run, "heartbeat")
        self._spawn(self.pod_cache.run, "watch-pods")
        self._spawn(self.service_cache.run, "watch-services")
        self._spawn(self.node_cache.run, "watch-nodes")
        for cache in (self.pod_cache, self.service_cache, self.node_cache):
            cache.synced.wait(30)
        log.info("nodes %s ready; pods get addresses from %s",
                 ", ".join(self.settings.nodes), self.settings.network.cidr)  # fmt: skip

    def run(self) -> None:
        """The reconcile loop: every change, and at least every TICK_SECONDS."""
        self.start()
        while not self.stop.is_set():
            self.changed.wait(TICK_SECONDS)
            self.changed.clear()
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
        self.shut_down()

    def _hosts_by_pod(
        self, mine: list[dict[str, Any]], every_pod: list[dict[str, Any]]
    ) -> dict[str, HostsRenderer]:
        """Each local pod's /etc/hosts, as a function of its address."""
        namespaces = {pod["metadata"]["namespace"] for pod in mine}
        pods_in: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for pod in every_pod:
            if pod["metadata"]["namespace"] in namespaces:
                pods_in[pod["metadata"]["namespace"]].append(pod)
        services = [
            s for s in self.service_cache.snapshot() if s["metadata"]["namespace"] in namespaces
        ]
        return {
            pod["metadata"]["uid"]: functools.partial(
                _render, pod, services, pods_in[pod["metadata"]["namespace"]]
            )
            for pod in mine
        }

    def reconcile(self) -> None:
        """One pass over every pod bound to our nodes."""
        every_pod = self.pod_cache.snapshot()
        nodes = self._serving_nodes(every_pod)
        mine = [
            p for p in every_pod
            if p["spec"].get("nodeName") in nodes and p["metadata"]["uid"] not in self.forgotten
        ]  # fmt: skip
        hosts = self._hosts_by_pod(mine, every_pod)
        for pod in mine:
            uid = pod["metadata"]["uid"]
            local = self.pods.get(uid)
            if local is None:
                local = self.pods[uid] = LocalPod(pod, self.context)
            local.sync(pod, hosts[uid])
            local.refresh_hosts()
        present = {p["metadata"]["uid"] for p in mine}
        for uid, local in list(self.pods.items()):
            if local.gone or uid not in present:
                if not local.gone:
                    local.shut_down()  # the object vanished without passing through us
                self._forget(uid)
        self.context.mountpoints.release(self._mount_targets())

    def _serving_nodes(self, every_pod: list[dict[str, Any]]) -> set[str]:
        """Our nodes that still exist. A node deleted from the API is a machine that vanished:
        its pods' processes are killed without a signal to catch and their status is never
        written again (Kubernetes removes the objects: PodGC). Once no pod is bound to it (and no
        test keeps it away), the machine is back, and registers again as a kubelet does when it
        starts."""
        present = {node["metadata"]["uid"] for node in self.node_cache.snapshot()}
        self.seen_nodes |= present & set(self.keeper.uids.values())
        for name in vanished_nodes(self.keeper.uids, self.seen_nodes, present):
            if name not in self.keeper.lost:
                log.warning("node %s was deleted: its pods die as if its machine were gone", name)
                self.keeper.lose(name)
        bound = {pod["spec"].get("nodeName") for pod in every_pod}
        for name in sorted(self.keeper.lost - bound):
            if self.settings.state.kept_away(name).exists():
                continue
            log.info("node %s has no pods left: registering it again", name)
            self.keeper.register_node(name)
        return set(self.settings.nodes) - self.keeper.lost

    def _forget(self, uid: str) -> None:
        del self.pods[uid]
        self.forgotten[uid] = None
        while len(self.forgotten) > FORGET_AFTER:
            self.forgotten.pop(next(iter(self.forgotten)))

    def _mount_targets(self) -> set[str]:
        targets: set[str] = set()
        for local in self.pods.values():
            if local.done:
                continue
            for container in local.pod["spec"]["containers"]:
                targets.update(m["mountPath"] for m in container.get("volumeMounts") or [])
                targets.add(container.get("workingDir") or "/")
                targets.add(termination_path(container))
        return targets

    def shut_down(self) -> None:
        """Stop every pod (SIGTERM, then SIGKILL), remove the bridge, maybe the nodes."""
        for local in self.pods.values():
            local.send_term()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while time.monotonic() < deadline and any(p.has_processes() for p in self.pods.values()):
            time.sleep(0.1)
        for local in self.pods.values():
            local.shut_down()
        self.context.mountpoints.release(set())
        network.remove_bridge(self.settings.network)
        if self.settings.unregister:
            self.keeper.unregister()
        log.info("stopped")


def _render(
    pod: dict[str, Any], services: list[dict[str, Any]], pods: list[dict[str, Any]], ip: str
) -> str:
    return render_hosts(pod, ip, services, pods)


def connect_path(kubeconfig: str) -> client.ApiClient:
    """An API client from a kubeconfig path."""
    return connect(Path(kubeconfig))
