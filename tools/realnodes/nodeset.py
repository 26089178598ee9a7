"""A cluster's real nodes together: the host interface, the cluster DNS, and every node."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.images.build import Builder, Image
from tools.images.store import Store, cache_root
from tools.localcluster import processes
from tools.localcluster.health import answers_ok
from tools.localcluster.kubeconfig import render_kubeconfig
from tools.localcluster.layout import REPO_ROOT, SERVICE_CIDR, Layout, cached_bin_dir
from tools.localcluster.pki import Pki, ensure_client_cert

from . import coredns, hostnet, kubeproxy, servicenet
from .hostshare import HostShare
from .naming import LOCAL_POOL, ClusterNaming, node_index
from .node import NodeBinaries, NodeError, RealNode
from .nodedirs import CONTAINERD_HOST_PATHS, KUBELET_HOST_PATHS

COREDNS = "coredns"
KUBE_PROXY = "kube-proxy"
DNS_TIMEOUT_SECONDS = 60.0
NODE_FILE = "node.json"  # in each node's directory: its index, so `down` finds its names


def cluster_alive(state_root: Path) -> bool:
    """True while any containerd of the cluster kept in state_root runs."""
    run_dir = state_root / "run"
    if not run_dir.is_dir():
        return False
    names = [path.stem for path in run_dir.glob("containerd-*.pid")]
    return any(processes.running_pid(run_dir, name, "containerd") for name in names)


class RealNodes:
    """The real nodes of one local cluster (root only)."""

    def __init__(self, layout: Layout, binaries: NodeBinaries, builder: Builder) -> None:
        self.layout, self.binaries, self.builder = layout, binaries, builder
        self.naming = ClusterNaming(layout.port_base)
        self.host = HostShare()

    def processes(self) -> list[tuple[str, str]]:
        """(pid-file name, binary) of every daemon the real nodes run."""
        daemons = [(COREDNS, COREDNS), (KUBE_PROXY, KUBE_PROXY)]
        for node in self.existing():
            daemons += [(node.containerd_name, "containerd"), (node.kubelet_name, "kubelet")]
        return daemons

    def processes_running(self) -> bool:
        """True while any daemon of the real nodes runs."""
        run_dir = self.layout.run_dir
        return any(
            processes.running_pid(run_dir, name, binary) for name, binary in self.processes()
        )

    def node(self, name: str) -> RealNode:
        """The node called name (local-N, or the system node)."""
        return RealNode(self.layout, self.naming.node(node_index(name), name), self.binaries)

    def existing(self) -> list[RealNode]:
        """Every node that has a directory under the state dir (running or not)."""
        nodes = []
        for path in sorted(self.layout.nodes_dir.glob(f"*/{NODE_FILE}")):
            nodes.append(self.node(json.loads(path.read_text())["name"]))
        return nodes

    def up(self, names: list[str], pki: Pki) -> list[RealNode]:
        """Start the nodes (containerd, the pause image, the kubelet), the cluster DNS and
        kube-proxy. Nodes already running are left as they are, so this also brings back one
        that was stopped."""
        if os.geteuid() != 0:
            raise NodeError("real nodes need root (mount namespaces, cgroups, interfaces)")
        pause = self.builder.ensure("pause")
        nodes = [self.node(name) for name in names]
        self._join_host(nodes)
        for node in nodes:
            node.start_containerd(pki, pause.ref)
            record = {"index": node.naming.index, "name": node.naming.name}
            (node.dirs.root / NODE_FILE).write_text(json.dumps(record) + "\n")
        for node in nodes:
            node.wait_containerd()
            node.import_image(pause.ref, pause.archive)  # before the kubelet: pods need it
            node.start_kubelet()
        self._start_dns()
        self._start_service_proxy(pki, names[0])
        return nodes

    def _join_host(self, nodes: list[RealNode]) -> None:
        """The host's shared settings, the cluster's address range and its host interface."""
        mountpoints = [*CONTAINERD_HOST_PATHS, *KUBELET_HOST_PATHS]
        self.layout.nodes_dir.mkdir(parents=True, exist_ok=True)  # so `down` undoes the join
        self.host.join(self.naming.tag, self.layout.root, mountpoints, cluster_alive)
        hostnet.check_range_free(self.naming)
        hostnet.ensure_host_interface(self.naming, [node.naming.node_ip for node in nodes])

    def stop_node(self, name: str) -> list[str]:
        """Stop one node as a machine that vanished: its kubelet, containers and containerd."""
        return self.node(name).stop()

    def _start_dns(self) -> None:
        layout = self.layout
        corefile = layout.root / "Corefile"
        kubeconfig = layout.component_kubeconfig("coredns")
        corefile.write_text(
            coredns.render_corefile(self.naming, kubeconfig, layout.coredns_ready_port)
        )
        if processes.running_pid(layout.run_dir, COREDNS, COREDNS) is None:
            argv = coredns.argv(self.binaries.path(COREDNS), corefile)
            processes.start(layout.run_dir, layout.log_dir, COREDNS, argv)
        _wait(f"http://127.0.0.1:{layout.coredns_ready_port}/ready", DNS_TIMEOUT_SECONDS)

    def _start_service_proxy(self, pki: Pki, node: str) -> None:
        """kube-proxy in the cluster's Service router namespace; wait for its first sync."""
        layout, naming = self.layout, self.naming
        servicenet.ensure(naming, SERVICE_CIDR)
        if processes.running_pid(layout.run_dir, KUBE_PROXY, KUBE_PROXY) is None:
            # Written only before it starts: kube-proxy exits when its configuration file changes.
            config = self._write_proxy_files(pki, node)
            argv = kubeproxy.argv(self.binaries.path(KUBE_PROXY), naming, config)
            processes.start(layout.run_dir, layout.log_dir, KUBE_PROXY, argv)
        _wait(kubeproxy.healthz_url(naming), DNS_TIMEOUT_SECONDS)

    def _write_proxy_files(self, pki: Pki, node: str) -> Path:
        """kube-proxy's kubeconfig and configuration file; return the latter."""
        layout, naming = self.layout, self.naming
        # system:kube-proxy: the identity the default ClusterRoleBinding system:node-proxier names.
        ensure_client_cert(pki, KUBE_PROXY, "system:kube-proxy", None)
        kubeconfig = layout.component_kubeconfig(KUBE_PROXY)
        # Its namespace has a loopback of its own: it reaches the API server at the host's address.
        server = f"https://{naming.apiserver_ip}:{layout.apiserver_port}"
        cert, key = pki.path(f"{KUBE_PROXY}.crt"), pki.path(f"{KUBE_PROXY}.key")
        kubeconfig.write_text(render_kubeconfig(server, pki.ca_cert, cert, key, "localhost"))
        config = layout.root / "kube-proxy.yaml"
        config.write_text(kubeproxy.render_config(naming, kubeconfig, node))
        return config

    def ensure_images(self, names: list[str], node_names: list[str] | None = None) -> list[Image]:
        """Build (or take from the cache) the named images; import them where missing.

        Into every training node, or only those in node_names: a torch image takes about a
        minute a node (and 5 GB of its disk), and the system node runs no training pods.
        """
        images = [self.builder.ensure(name) for name in names]

        def wanted(node: RealNode) -> bool:
            if node_names is None:
                return node.naming.pool == LOCAL_POOL
            return node.naming.name in node_names

        nodes = [node for node in self.existing() if wanted(node)]

        def import_all(node: RealNode) -> None:
            for image in images:
                node.import_image(image.ref, image.archive)

        # In parallel: each import gunzips and unpacks on one thread, so two nodes use both cores
        # (the torch images: 112 s for two nodes instead of 182 s one after the other).
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            list(pool.map(import_all, nodes))
        return images

    def down(self, delete_nodes: Callable[[list[str]], None]) -> list[str]:
        """Stop every node and the DNS, delete their Node objects, restore the host."""
        stopped = []
        nodes = self.existing()
        for node in nodes:
            stopped += node.stop()
        if nodes:
            delete_nodes([node.naming.name for node in nodes])
        for daemon in (KUBE_PROXY, COREDNS):
            if processes.stop(self.layout.run_dir, daemon, daemon):
                stopped.append(daemon)
        servicenet.delete(self.naming)
        hostnet.delete_links(hostnet.cluster_links(self.naming, hostnet.link_names()))
        self.host.leave(self.naming.tag, cluster_alive)
        return stopped


def _wait(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not answers_ok(url):
        if time.monotonic() > deadline:
            raise NodeError(f"not ready in {timeout:.0f}s: {url}")
        time.sleep(0.2)


def open_real_nodes(layout: Layout, build: bool = True) -> RealNodes:
    """The cluster's real nodes, with the node binaries (built first unless build=False)."""
    binaries = NodeBinaries(cached_bin_dir(build, binary_set="node"))
    return RealNodes(layout, binaries, Builder(Store(cache_root()), REPO_ROOT))
