"""Optional schedulers beside kube-scheduler, run as host processes: Kueue, Volcano, coscheduling.

tools/build-addons.sh builds each from the Go module proxy into a cache directory of its own
(keyed by its pins in tools/pins.env) holding bin/, crds/ (from the module's own files) and, for
Kueue, webhooks/. Their default ports collide (8080, 8081, 8443, 9443, 10259), so each listens
on loopback ports of its own in the cluster's block. Volcano's scheduler binds only pods with
`schedulerName: volcano` and the coscheduling one only pods with `schedulerName:
scheduler-plugins-scheduler`; kube-scheduler keeps every other pod.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import kueue
from .components import Component
from .layout import REPO_ROOT, Layout
from .pki import Pki, ensure_loopback_serving_cert

KUEUE, VOLCANO, COSCHEDULING = "kueue", "volcano", "coscheduling"
NAMES = (KUEUE, VOLCANO, COSCHEDULING)
VOLCANO_SCHEDULER_NAME = "volcano"
# The name scheduler-plugins' own install uses when it runs beside kube-scheduler.
COSCHEDULING_SCHEDULER_NAME = "scheduler-plugins-scheduler"
# How long a gang the coscheduling plugin rejected waits before it is tried again.
COSCHEDULING_RETRY = "30s"

# Offsets in the cluster's port block; the control plane's are in layout.py (43 to 88).
_PORT_OFFSETS = {
    "coscheduling": 61,
    "volcano-scheduler-healthz": 62,
    "volcano-scheduler-metrics": 63,
    "volcano-controllers-healthz": 64,
    "volcano-controllers-metrics": 65,
    "kueue-webhook": 66,
    "kueue-metrics": 67,
    "kueue-health": 68,
}


def port(layout: Layout, name: str) -> int:
    """The loopback port `name` listens on in this cluster."""
    return layout.port_base + _PORT_OFFSETS[name]


@dataclass(frozen=True)
class Scheduler:
    """One optional scheduler: its build cache, processes and the files they read."""

    name: str
    home: Path  # bin/, crds/ (and webhooks/) from tools/build-addons.sh
    components: list[Component]  # started in this order, stopped in reverse
    files: dict[Path, str] = field(default_factory=dict)  # written before they start

    @property
    def crds(self) -> Path:
        """The directory of its CustomResourceDefinitions."""
        return self.home / "crds"


def cached_homes(names: Sequence[str], build: bool = True) -> dict[str, Path]:
    """Each scheduler's cache directory (tools/build-addons.sh), built first unless build=False."""
    script = str(REPO_ROOT / "tools" / "build-addons.sh")
    argv = [script, *([] if build else ["--print-dir"]), *names]
    result = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    homes = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return {name: Path(homes[name]) for name in names}


def state_dir(layout: Layout, name: str) -> Path:
    """Where a scheduler's configuration and certificates live in this cluster."""
    return layout.root / "schedulers" / name


def parse_names(text: str) -> list[str]:
    """`kueue,volcano` → ['kueue', 'volcano'], refusing unknown names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown addon(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return names


def coscheduling(layout: Layout, home: Path) -> Scheduler:
    """scheduler-plugins' scheduler with the Coscheduling plugin, in a profile of its own name."""
    config_path = state_dir(layout, COSCHEDULING) / "scheduler-config.yaml"
    plugin = [{"name": "Coscheduling"}]
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "leaderElection": {"leaderElect": False},
        "clientConnection": {"kubeconfig": str(layout.kubeconfig), "qps": 300, "burst": 600},
        "profiles": [
            {
                "schedulerName": COSCHEDULING_SCHEDULER_NAME,
                "plugins": {
                    "multiPoint": {"enabled": plugin},
                    "queueSort": {"enabled": plugin, "disabled": [{"name": "*"}]},
                },
                # How long the first bound members wait at Permit for the rest of the gang.
                "pluginConfig": [
                    {"name": "Coscheduling", "args": {"permitWaitingTimeSeconds": 10}},
                ],
            }
        ],
    }
    secure_port = port(layout, "coscheduling")
    argv = [
        str(home / "bin" / "coscheduling-scheduler"),
        f"--config={config_path}",
        f"--authentication-kubeconfig={layout.kubeconfig}",
        f"--authorization-kubeconfig={layout.kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={secure_port}",
        # The plugin wakes a rejected gang only when a pod is added or its PodGroup changes, not
        # when capacity frees; kube-scheduler retries such pods after this long (default 5m).
        f"--pod-max-in-unschedulable-pods-duration={COSCHEDULING_RETRY}",
    ]
    url = f"https://127.0.0.1:{secure_port}/healthz"
    component = Component("coscheduling-scheduler", "coscheduling-scheduler", argv, url)
    return Scheduler(COSCHEDULING, home, [component], {config_path: yaml.safe_dump(config)})


def _volcano_component(layout: Layout, home: Path, role: str, extra: list[str]) -> Component:
    binary = f"vc-{role}"
    short = "scheduler" if role == "scheduler" else "controllers"
    healthz = port(layout, f"volcano-{short}-healthz")
    argv = [
        str(home / "bin" / binary),
        f"--kubeconfig={layout.kubeconfig}",
        "--leader-elect=false",
        "--enable-healthz=true",
        f"--healthz-address=127.0.0.1:{healthz}",
        f"--listen-address=127.0.0.1:{port(layout, f'volcano-{short}-metrics')}",
        f"--scheduler-name={VOLCANO_SCHEDULER_NAME}",
        *extra,
    ]
    return Component(f"volcano-{short}", binary, argv, f"http://127.0.0.1:{healthz}/healthz")


# Volcano's built-in default (pkg/scheduler/util.go), written out: without a file it logs an
# error at start before falling back to it.
VOLCANO_SCHEDULER_CONF = {
    "actions": "enqueue, allocate, backfill",
    "tiers": [
        {"plugins": [{"name": "priority"}, {"name": "gang"}, {"name": "conformance"}]},
        {
            "plugins": [
                {"name": name}
                for name in ("overcommit", "drf", "predicates", "proportion", "nodeorder")
            ]
        },
    ],
}


def volcano(layout: Layout, home: Path) -> Scheduler:
    """Volcano's controller-manager (queues, PodGroups) and scheduler, default configuration."""
    # Only the controllers a PodGroup and its queue need: the others watch Volcano's own jobs.
    controllers = _volcano_component(
        layout, home, "controller-manager", ["--controllers=queue-controller,pg-controller"]
    )
    conf = state_dir(layout, VOLCANO) / "scheduler.conf"
    extra = [f"--scheduler-conf={conf}", "--cache-dumper=false"]
    scheduler = _volcano_component(layout, home, "scheduler", extra)
    files = {conf: yaml.safe_dump(VOLCANO_SCHEDULER_CONF)}
    return Scheduler(VOLCANO, home, [controllers, scheduler], files)


def kueue_scheduler(layout: Layout, home: Path) -> Scheduler:
    """Kueue's controller manager; its webhook serves a certificate from the cluster's CA."""
    state = state_dir(layout, KUEUE)
    ports = kueue.Ports(
        webhook=port(layout, "kueue-webhook"),
        metrics=port(layout, "kueue-metrics"),
        health=port(layout, "kueue-health"),
    )
    config_path = state / "config.yaml"
    argv = [
        str(home / "bin" / "kueue"),
        f"--config={config_path}",
        f"--kubeconfig={layout.kubeconfig}",
    ]
    url = f"http://127.0.0.1:{ports.health}/readyz"
    component = Component("kueue", "kueue", argv, url)
    config = kueue.build_config(ports, state / "certs")
    return Scheduler(KUEUE, home, [component], {config_path: yaml.safe_dump(config)})


def prepare(layout: Layout, scheduler: Scheduler, pki: Pki) -> None:
    """Write the files a scheduler reads at start: its configuration, its certificates."""
    for path, text in scheduler.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if scheduler.name == KUEUE:
        certs = ensure_loopback_serving_cert(pki, state_dir(layout, KUEUE) / "certs", "kueue")
        kueue.ensure_metrics_certs(certs)


def registrations(layout: Layout, scheduler: Scheduler, pki: Pki) -> list[dict[str, Any]]:
    """API objects that point at a scheduler once it serves: Kueue's webhook configurations."""
    if scheduler.name != KUEUE:
        return []
    manifests = scheduler.home / "webhooks" / "manifests.yaml"
    return kueue.build_webhook_configurations(manifests, port(layout, "kueue-webhook"), pki.ca_cert)


def registration_names(scheduler: Scheduler) -> list[tuple[str, str]]:
    """(kind, name) of what `registrations` creates: removed before the scheduler stops."""
    if scheduler.name != KUEUE:
        return []
    return sorted(kueue.WEBHOOK_CONFIGURATIONS.items())


def build_schedulers(layout: Layout, homes: dict[str, Path]) -> list[Scheduler]:
    """The schedulers whose homes are given, in the order given."""
    makers = {COSCHEDULING: coscheduling, VOLCANO: volcano, KUEUE: kueue_scheduler}
    return [makers[name](layout, home) for name, home in homes.items()]
