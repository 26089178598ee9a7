"""Pure pieces of the optional schedulers: ports, command lines, Kueue's config and webhooks."""

from __future__ import annotations

import base64
import ipaddress
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tools.localcluster import components, crds, kueue, schedulers
from tools.localcluster.layout import REPO_ROOT, SERVICE_IP, Layout
from tools.localcluster.pki import ensure_loopback_serving_cert, ensure_pki

WEBHOOKS = """\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: mutating-webhook-configuration}
webhooks:
- name: mjob.kb.io
  clientConfig: {service: {name: webhook-service, namespace: system, path: /mutate-batch-v1-job}}
  rules: [{apiGroups: [batch], apiVersions: [v1], operations: [CREATE], resources: [jobs]}]
- name: mpod.kb.io
  clientConfig: {service: {name: webhook-service, namespace: system, path: /mutate--v1-pod}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
- name: mworkload.kb.io
  clientConfig:
    service:
      {name: webhook-service, namespace: system, path: /mutate-kueue-x-k8s-io-v1beta2-workload}
  rules:
  - {apiGroups: [kueue.x-k8s.io], apiVersions: [v1beta2], operations: [CREATE],
     resources: [workloads]}
"""


def _layout(tmp_path: Path, port_base: int = 16400) -> Layout:
    return Layout(root=tmp_path / "cluster", bin_dir=tmp_path / "bin", port_base=port_base)


def _all(layout: Layout) -> list[schedulers.Scheduler]:
    homes = {name: Path("/cache") / name for name in schedulers.NAMES}
    return schedulers.build_schedulers(layout, homes)


def test_every_scheduler_port_is_in_the_cluster_block_and_none_is_shared(tmp_path: Path) -> None:
    layout = _layout(tmp_path, port_base=20400)
    control_plane = components.control_plane(layout, ensure_pki(tmp_path / "pki", SERVICE_IP))
    argv = " ".join(arg for c in [*control_plane, *(c for s in _all(layout) for c in s.components)]
                    for arg in c.argv)  # fmt: skip
    ports = [schedulers.port(layout, name) for name in schedulers._PORT_OFFSETS]
    assert len(set(ports)) == len(ports)
    assert all(20400 < p < 20500 for p in ports)
    for taken in (layout.apiserver_port, layout.etcd_port, layout.scheduler_port):
        assert taken not in ports
    # None of the defaults that collide between these programs is left in a command line.
    for default in (":8080", ":8081", ":8443", ":9443", ":10259", ":11251"):
        assert default not in argv


def test_volcano_and_coscheduling_only_bind_pods_that_name_them(tmp_path: Path) -> None:
    by_name = {s.name: s for s in _all(_layout(tmp_path))}
    volcano_argv = [arg for c in by_name["volcano"].components for arg in c.argv]
    assert volcano_argv.count("--scheduler-name=volcano") == 2
    config_text = next(iter(by_name["coscheduling"].files.values()))
    profiles = yaml.safe_load(config_text)["profiles"]
    assert [p["schedulerName"] for p in profiles] == [schedulers.COSCHEDULING_SCHEDULER_NAME]


def test_unknown_addon_names_are_refused_with_the_known_ones_listed() -> None:
    assert schedulers.parse_names(" kueue, volcano ,") == ["kueue", "volcano"]
    with pytest.raises(ValueError, match=r"unknown addon.*yunikorn.*known: kueue"):
        schedulers.parse_names("kueue,yunikorn")


def test_kueue_runs_without_its_own_certificates_on_loopback_ports(tmp_path: Path) -> None:
    config = kueue.build_config(kueue.Ports(webhook=1, metrics=2, health=3), tmp_path)
    assert config["internalCertManagement"] == {"enable": False}
    assert config["webhook"] == {"host": "127.0.0.1", "port": 1, "certDir": str(tmp_path)}
    assert config["metrics"]["bindAddress"] == "127.0.0.1:2"
    assert config["integrations"]["frameworks"] == ["batch/job"]


def test_kueue_webhooks_point_at_loopback_for_its_own_kinds_and_enabled_integrations_only(
    tmp_path: Path,
) -> None:
    manifests, ca = tmp_path / "manifests.yaml", tmp_path / "ca.crt"
    manifests.write_text(WEBHOOKS)
    ca.write_bytes(b"CA")
    [mutating] = kueue.build_webhook_configurations(manifests, 9443, ca)
    assert mutating["metadata"] == {"name": "kueue-mutating-webhook-configuration"}
    hooks = {w["name"]: w for w in mutating["webhooks"]}
    assert sorted(hooks) == ["mjob.kb.io", "mworkload.kb.io"]  # pods are not enabled
    job = hooks["mjob.kb.io"]
    assert job["clientConfig"] == {
        "url": "https://127.0.0.1:9443/mutate-batch-v1-job",
        "caBundle": base64.b64encode(b"CA").decode(),
    }
    excluded = job["namespaceSelector"]["matchExpressions"][0]["values"]
    assert excluded == ["kube-system", "kueue-system"]
    assert "namespaceSelector" not in hooks["mworkload.kb.io"]


def test_the_loopback_serving_cert_is_issued_by_the_cluster_ca_for_127_0_0_1(
    tmp_path: Path,
) -> None:
    pki = ensure_pki(tmp_path / "pki", SERVICE_IP)
    directory = ensure_loopback_serving_cert(pki, tmp_path / "certs", "kueue")
    cert = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)


def test_crd_resource_names_come_from_the_yaml_files(tmp_path: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {"group": "scheduling.x-k8s.io", "names": {"plural": "podgroups"}},
    }
    (tmp_path / "crd.yaml").write_text(yaml.safe_dump_all([crd, {"kind": "Other"}]))
    assert crds.resource_names(tmp_path) == ["podgroups.scheduling.x-k8s.io"]


def test_build_addons_keeps_published_replaces_and_swaps_in_the_pinned_exceptions(
    tmp_path: Path,
) -> None:
    gomod = tmp_path / "go.mod"
    gomod.write_text(
        "module example\n\nreplace (\n"
        "\tk8s.io/api => k8s.io/api v0.34.7\n"
        "\tk8s.io/csi-translation-lib => k8s.io/csi-translation-lib v0.34.7\n"
        "\tvolcano.sh/apis => ./staging/src/volcano.sh/apis\n"
        ")\n\nreplace k8s.io/kubelet => k8s.io/kubelet v0.34.7\n"
    )
    script = REPO_ROOT / "tools" / "build-addons.sh"
    # Only the functions: sourcing the script with no addon named would exit with its usage.
    functions = subprocess.run(
        ["sed", "-n", "/^published_replaces()/,/^}/p;/^replaces_with_overrides()/,/^}/p", script],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    command = f'{functions}\nreplaces_with_overrides "{gomod}" "k8s.io/csi-translation-lib=v0.34.8"'
    lines = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert lines == [
        "replace k8s.io/api => k8s.io/api v0.34.7",
        "replace k8s.io/kubelet => k8s.io/kubelet v0.34.7",
        "replace k8s.io/csi-translation-lib => k8s.io/csi-translation-lib v0.34.8",
    ]
