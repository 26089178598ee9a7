"""Pure pieces of the local cluster: certificates, kubeconfigs, node shapes, command lines."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tools.localcluster import components
from tools.localcluster.kubeconfig import render_kubeconfig, write_kubeconfigs
from tools.localcluster.layout import SERVICE_IP, Layout
from tools.localcluster.nodes import build_fake_gpu_nodes
from tools.localcluster.pki import ensure_pki


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _layout(tmp_path: Path, port_base: int = 16400) -> Layout:
    return Layout(root=tmp_path / "cluster", bin_dir=tmp_path / "bin", port_base=port_base)


def test_the_serving_certificate_is_signed_by_the_ca_and_names_loopback_and_the_service_ip(
    tmp_path: Path,
) -> None:
    pki = ensure_pki(tmp_path, SERVICE_IP)
    ca, serving = _load(pki.ca_cert), _load(pki.serving_cert)
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert ipaddress.ip_address(SERVICE_IP) in ips
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("stem", "organization"),
    [("admin", "system:masters"), ("scheduler", None), ("controller-manager", None)],
)
def test_client_certificates_carry_their_identity_for_rbac(
    tmp_path: Path, stem: str, organization: str | None
) -> None:
    pki = ensure_pki(tmp_path, SERVICE_IP)
    cert = _load(pki.path(f"{stem}.crt"))
    cert.verify_directly_issued_by(_load(pki.ca_cert))
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ([organization] if organization else [])
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_pki_is_created_once_and_then_reused(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, SERVICE_IP).ca_cert.read_bytes()
    second = ensure_pki(tmp_path, SERVICE_IP).ca_cert.read_bytes()
    assert first == second


def test_a_kubeconfig_points_at_the_server_with_client_certificate_files(tmp_path: Path) -> None:
    text = render_kubeconfig("https://127.0.0.1:1", tmp_path / "ca", tmp_path / "c", tmp_path / "k")
    config = yaml.safe_load(text)
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"
    assert config["users"][0]["user"]["client-key"] == str(tmp_path / "k")
    assert config["current-context"] == config["contexts"][0]["name"]


def test_the_users_kubeconfig_is_the_admin_identity(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    layout.root.mkdir(parents=True)
    write_kubeconfigs(layout, ensure_pki(layout.pki_dir, SERVICE_IP))
    user = yaml.safe_load(layout.kubeconfig.read_text())["users"][0]["user"]
    assert user["client-certificate"].endswith("admin.crt")
    assert layout.component_kubeconfig("scheduler").exists()


def test_fake_nodes_look_like_distinct_eight_gpu_machines_managed_by_kwok() -> None:
    nodes = build_fake_gpu_nodes()
    assert len(nodes) == 4
    assert len({n["metadata"]["name"] for n in nodes}) == 4
    assert len({n["status"]["addresses"][0]["address"] for n in nodes}) == 4
    for node in nodes:
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert node["status"]["capacity"] == node["status"]["allocatable"]


def test_two_clusters_with_different_port_bases_share_no_port(tmp_path: Path) -> None:
    def ports(layout: Layout) -> set[int]:
        names = ["apiserver", "etcd", "etcd_peer", "controller_manager", "scheduler", "kwok"]
        return {getattr(layout, f"{name}_port") for name in names} | {layout.operator_metrics_port}

    dev, test = ports(_layout(tmp_path, 16400)), ports(_layout(tmp_path, 17400))
    assert len(dev) == 7
    assert not dev & test


def test_the_control_plane_starts_in_dependency_order_with_paths_inside_its_root(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path)
    plane = components.control_plane(layout, ensure_pki(layout.pki_dir, SERVICE_IP))
    assert [c.name for c in plane] == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]
    apiserver = plane[1]
    assert f"--etcd-servers=http://127.0.0.1:{layout.etcd_port}" in apiserver.argv
    assert apiserver.argv[0] == str(tmp_path / "bin" / "kube-apiserver")
    for client in plane[2:]:  # each client of the API server has its own identity's kubeconfig
        assert client.argv[1].startswith(f"--kubeconfig={layout.root}/kubeconfigs/")


def test_pods_reach_the_api_server_at_the_clusters_host_address_behind_the_kubernetes_service(
    tmp_path: Path,
) -> None:
    pki = ensure_pki(_layout(tmp_path).pki_dir, SERVICE_IP)
    apiserver = components.kube_apiserver(_layout(tmp_path, 17400), pki)
    assert "--bind-address=0.0.0.0" in apiserver.argv
    assert "--advertise-address=10.174.255.1" in apiserver.argv
    assert not any(arg.startswith("--endpoint-reconciler-type") for arg in apiserver.argv)
    # A port base that names no real-node cluster keeps the old loopback-only endpoint.
    odd = components.kube_apiserver(_layout(tmp_path, 17450), pki)
    assert {"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"} <= set(odd.argv)


def test_the_api_server_audits_writes_by_clients_outside_the_control_plane(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    apiserver = components.kube_apiserver(layout, ensure_pki(layout.pki_dir, SERVICE_IP))
    assert f"--audit-log-path={layout.audit_log}" in apiserver.argv
    policy = yaml.safe_load(components.AUDIT_POLICY_FILE.read_text())
    assert f"--audit-policy-file={components.AUDIT_POLICY_FILE}" in apiserver.argv
    assert policy["omitStages"] == ["RequestReceived"]  # one line per request
    logged = [rule for rule in policy["rules"] if rule["level"] != "None"]
    assert logged == [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]}
    ]
    quiet = {user for rule in policy["rules"] for user in rule.get("users", [])}
    assert {"system:kube-scheduler", "kwok-controller"} <= quiet


def test_the_kwok_stages_cover_node_and_pod_lifecycles_and_chaos() -> None:
    stages = list(yaml.safe_load_all(components.STAGES_FILE.read_text()))
    names = {stage["metadata"]["name"] for stage in stages}
    assert names == {
        "node-initialize",
        "node-not-ready",
        "pod-ready",
        "pod-container-running-failed",
        "pod-complete",
        "pod-delete",
    }
    assert all(stage["kind"] == "Stage" for stage in stages)
