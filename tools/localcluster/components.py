"""The command line of each control-plane component, and how to tell it is healthy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tools.realnodes.naming import ClusterNaming, NamingError

from .layout import FAKE_NODE_IP, POD_CIDR, SERVICE_CIDR, Layout
from .pki import Pki

STAGES_FILE = Path(__file__).with_name("stages.yaml")
KWOK_CONFIG_FILE = Path(__file__).with_name("kwok-config.yaml")
AUDIT_POLICY_FILE = Path(__file__).with_name("audit-policy.yaml")
# Then rotated once: a bench's burst fits, a long-lived cluster's log stays small.
AUDIT_LOG_MEGABYTES = 100
# Lease of a fake node; the controller-manager marks a node lost after its grace period.
NODE_LEASE_SECONDS = 40


@dataclass(frozen=True)
class Component:
    """A daemon of the control plane."""

    name: str
    binary: str
    argv: list[str]
    health_url: str  # polled until it answers 200


def etcd(layout: Layout) -> Component:
    client = f"http://127.0.0.1:{layout.etcd_port}"
    argv = [
        layout.binary("etcd"),
        "--name=ringleader",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls=http://127.0.0.1:{layout.etcd_peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{layout.etcd_peer_port}",
        f"--initial-cluster=ringleader=http://127.0.0.1:{layout.etcd_peer_port}",
        "--unsafe-no-fsync",  # a throwaway dev/test cluster: speed over durability
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    ]
    return Component("etcd", "etcd", argv, f"{client}/health")


def _advertise_flags(layout: Layout) -> list[str]:
    """Where pods reach the API server: the `kubernetes` Service's endpoint.

    The cluster's address on the host (real nodes' pods route to it; kube-proxy sends
    10.96.0.1:443 there). A port base that cannot name a cluster runs no real nodes: loopback,
    and no endpoint to publish.
    """
    try:
        address = ClusterNaming(layout.port_base).apiserver_ip
    except NamingError:
        return ["--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]
    return [f"--advertise-address={address}"]


def kube_apiserver(layout: Layout, pki: Pki) -> Component:
    argv = [
        layout.binary("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{layout.etcd_port}",
        # Every address, as on a real control plane: pods come from the nodes' bridges to the
        # cluster's host address (clients still need a certificate or a token).
        "--bind-address=0.0.0.0",
        *_advertise_flags(layout),
        f"--secure-port={layout.apiserver_port}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Node: a kubelet (system:node:NAME) may touch only its own node and its pods' objects.
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        # Real nodes: how the API server reaches their kubelets for logs, exec and port-forward.
        f"--kubelet-client-certificate={pki.path('apiserver-kubelet-client.crt')}",
        f"--kubelet-client-key={pki.path('apiserver-kubelet-client.key')}",
        "--kubelet-preferred-address-types=InternalIP",
        # Webhooks and aggregated APIs behind a Service are called at an endpoint's pod IP: the
        # host routes to every node's bridge, while only pods' traffic goes through kube-proxy
        # (tools/realnodes/servicenet.py), so a Service's ClusterIP means nothing on the host.
        "--enable-aggregator-routing=true",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--api-audiences=https://kubernetes.default.svc.cluster.local",
        "--allow-privileged=true",
        "--profiling=false",
        f"--cert-dir={layout.pki_dir}",
        *_audit_flags(layout),
    ]
    return Component("kube-apiserver", "kube-apiserver", argv, f"{layout.server}/readyz")


def _audit_flags(layout: Layout) -> list[str]:
    """Every write by a client that is not the control plane, one JSON line each."""
    return [
        f"--audit-policy-file={AUDIT_POLICY_FILE}",
        f"--audit-log-path={layout.audit_log}",
        "--audit-log-format=json",
        f"--audit-log-maxsize={AUDIT_LOG_MEGABYTES}",
        "--audit-log-maxbackup=1",
    ]


def _client_flags(layout: Layout, identity: str) -> list[str]:
    kubeconfig = layout.component_kubeconfig(identity)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        # The defaults (20-50 requests/s) make a burst of hundreds of pods take tens of seconds.
        "--kube-api-qps=300",
        "--kube-api-burst=600",
    ]


def kube_controller_manager(layout: Layout, pki: Pki) -> Component:
    argv = [
        layout.binary("kube-controller-manager"),
        *_client_flags(layout, "controller-manager"),
        f"--secure-port={layout.controller_manager_port}",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca_cert}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
        # A throwaway cluster: take a node that stopped renewing its lease for lost after 20 s,
        # not the default 50 s, and look every 2 s, so node-loss tests take seconds. 20 s still
        # leaves room for the renewals every 10 s (kwok renews every NODE_LEASE_SECONDS / 4, a
        # kubelet every 10 s) to be late on a busy machine.
        "--node-monitor-grace-period=20s",
        "--node-monitor-period=2s",
    ]
    url = f"https://127.0.0.1:{layout.controller_manager_port}/healthz"
    return Component("kube-controller-manager", "kube-controller-manager", argv, url)


def kube_scheduler(layout: Layout) -> Component:
    argv = [
        layout.binary("kube-scheduler"),
        *_client_flags(layout, "scheduler"),
        f"--secure-port={layout.scheduler_port}",
    ]
    url = f"https://127.0.0.1:{layout.scheduler_port}/healthz"
    return Component("kube-scheduler", "kube-scheduler", argv, url)


def kwok(layout: Layout) -> Component:
    argv = [
        layout.binary("kwok"),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={STAGES_FILE}",
        f"--config={KWOK_CONFIG_FILE}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={POD_CIDR}",
        f"--node-ip={FAKE_NODE_IP}",
        f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
        f"--server-address=127.0.0.1:{layout.kwok_port}",
    ]
    return Component("kwok", "kwok", argv, f"http://127.0.0.1:{layout.kwok_port}/healthz")


def control_plane(layout: Layout, pki: Pki) -> list[Component]:
    """All components, in start order (each depends only on those before it)."""
    return [
        etcd(layout),
        kube_apiserver(layout, pki),
        kube_controller_manager(layout, pki),
        kube_scheduler(layout),
        kwok(layout),
    ]
