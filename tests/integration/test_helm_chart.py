"""The Helm chart on a real control plane: it lints, renders what the server accepts, installs,
and grants the operator exactly what it needs.

The chart's Deployment lands on a kwok node, where nothing really runs; so the RBAC is proven by
running the operator out of cluster with a token of the chart's ServiceAccount.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from ringleader import admission
from tests.kube import Kube, wait_until
from tools.localcluster.cluster import kubectl_binary
from tools.localcluster.layout import cached_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "ringleader"
CRD_NAME = "distributedtrainingjobs.ringleader.dev"
GENERATED_CRD = REPO_ROOT / "crds" / "ringleader.dev_distributedtrainingjobs.yaml"
KWOK_ONLY = "nodeSelector.ringleader\\.dev/node-pool=kwok"  # never a local (real-process) node


class Helm:
    """The pinned helm binary, bound to the test cluster, with its state kept out of $HOME."""

    def __init__(self, kube: Kube, home: Path) -> None:
        self.kube = kube
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run helm; fail the test with its output when check is set and it fails."""
        argv = [str(cached_bin_dir() / "helm"), f"--kubeconfig={self.kube.kubeconfig}", *args]
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
        return result

    def template(self, namespace: str, *sets: str) -> str:
        """The chart's manifests for these --set values."""
        flags = [arg for value in sets for arg in ("--set", value)]
        return self.run("template", "rl", str(CHART), "-n", namespace, *flags).stdout


@pytest.fixture(scope="module")
def helm(kube: Kube, crd: str, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm, with the CRD already in the cluster (as other tests' sessions leave it)."""
    return Helm(kube, tmp_path_factory.mktemp("helm"))


def fresh_namespace(kube: Kube, prefix: str) -> str:
    """Create a namespace with a unique name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    return name


def dry_run_on_server(kube: Kube, manifests: str) -> str:
    """Send manifests through the server's validation and admission without storing them."""
    # Server-side apply: a client-side apply would store the 160 kB CRD in an annotation.
    args = ["apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", "-"]
    return kube.run(*args, stdin=manifests)


def make_job(name: str) -> dict[str, Any]:
    """A two-worker GPU job: only the kwok nodes have GPUs, so kwok 'runs' it."""
    container = {
        "name": "trainer",
        "image": "ringleader-trainer:0.1.0",
        "command": ["python", "-m", "ringleader_trainer.launch"],
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [container]}}},
    }


def token_kubeconfig(kube: Kube, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (TokenRequest API, 10 minutes)."""
    token = kube.run("create", "token", account, "-n", namespace, "--duration=10m").strip()
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:  # a relative CA path would break in another folder
        ca_path = Path(cluster["certificate-authority"])
        cluster = {**cluster, "certificate-authority": str(kube.kubeconfig.parent / ca_path)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": account}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def job_phase(kube: Kube, namespace: str, name: str) -> str | None:
    """The job's status.phase (None before the operator wrote one)."""
    phase: str | None = kube.get("dtj", name, namespace=namespace).get("status", {}).get("phase")
    return phase


def as_user(
    kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl as the kubeconfig's user; the caller checks the outcome."""
    argv = [kubectl_binary(), f"--kubeconfig={kubeconfig}", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def can_i(kubeconfig: Path, *args: str) -> bool:
    """`kubectl auth can-i` as the kubeconfig's user."""
    return as_user(kubeconfig, "auth", "can-i", *args).stdout.strip() == "yes"


def allowed(kubeconfig: Path, verb: str, group: str, resource: str, namespace: str) -> bool:
    """The authorizer's answer for the kubeconfig's user, asked directly: `kubectl auth can-i`
    cannot name a resource of an API group the server does not serve."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "namespace": namespace,
            }
        },
    }
    answer = as_user(kubeconfig, "create", "-f", "-", "-o", "json", stdin=json.dumps(review))
    assert answer.returncode == 0, answer.stderr
    return bool(json.loads(answer.stdout)["status"].get("allowed"))


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> str:
    """The operator's /metrics text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split(" ")[0] == f"{name}{{{wanted}}}":
            return float(line.split(" ")[1])
    return 0.0


@pytest.fixture(scope="module")
def release(helm: Helm, kube: Kube) -> Iterator[dict[str, str]]:
    """The chart installed in namespaced mode: its own namespace, one watched, one not."""
    names = {
        "system": fresh_namespace(kube, "rl-system"),
        "jobs": fresh_namespace(kube, "rl-jobs"),
        "other": fresh_namespace(kube, "rl-other"),
        "release": f"rl-{uuid.uuid4().hex[:6]}",
    }
    helm.run(
        "install", names["release"], str(CHART), "-n", names["system"],
        "--set", f"watchNamespaces={{{names['jobs']}}}", "--set", KWOK_ONLY,
        "--take-ownership", "--wait", "--timeout=90s",
    )  # fmt: skip
    names["account"] = f"{names['release']}-ringleader"
    yield names
    helm.run("uninstall", names["release"], "-n", names["system"], "--wait", check=False)
    for key in ("system", "jobs", "other"):
        kube.run("delete", "namespace", names[key], "--wait=false", check=False)


def test_the_chart_lints_clean(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "sets",
    [
        [],
        ["replicas=2"],
        ["watchNamespaces={NS}"],
        ["watchNamespaces={NS}", "replicas=3", "metrics.enabled=false", "health.enabled=false"],
    ],
    ids=["defaults", "two-replicas", "namespaced", "namespaced-three-replicas-no-metrics"],
)
def test_the_rendered_chart_passes_the_servers_dry_run(
    helm: Helm, kube: Kube, namespace: str, sets: list[str]
) -> None:
    # The peering kinds come from the chart's crds/ directory, which helm installs before the
    # templates; `helm template` leaves it out, so install it here as `helm install` would.
    kube.run("apply", "--server-side", "-f", str(CHART / "crds"))
    kube.run("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
    manifests = helm.template(namespace, *[s.replace("NS", namespace) for s in sets])
    output = dry_run_on_server(kube, manifests)
    assert "deployment.apps/rl-ringleader serverside-applied (server dry run)" in output
    peering = "kopfpeering" if "watchNamespaces" in str(sets) else "clusterkopfpeering"
    assert (f"{peering}.kopf.dev/rl-ringleader" in output) == ("replicas" in str(sets))


def test_the_charts_crd_is_the_generated_one_with_the_keep_policy(helm: Helm) -> None:
    docs = [d for d in yaml.safe_load_all(helm.template("default")) if d]
    crd = next(d for d in docs if d["kind"] == "CustomResourceDefinition")
    generated = yaml.safe_load(GENERATED_CRD.read_text())
    assert crd["spec"] == generated["spec"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    docs = [d for d in yaml.safe_load_all(helm.template("default", "crds.keep=false")) if d]
    crd = next(d for d in docs if d["kind"] == "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_the_charts_webhook_is_the_operators_with_a_certificate_for_its_service(
    helm: Helm,
) -> None:
    docs = [d for d in yaml.safe_load_all(helm.template("sys", "watchNamespaces={a}")) if d]
    by_kind = {d["kind"]: d for d in docs if d["kind"] != "Service"}
    (webhook,) = by_kind["ValidatingWebhookConfiguration"]["webhooks"]
    (expected,) = admission.webhook_configuration({})["webhooks"]
    for key in ("name", "rules", "admissionReviewVersions", "sideEffects", "failurePolicy"):
        assert webhook[key] == expected[key], key
    assert webhook["timeoutSeconds"] == expected["timeoutSeconds"]
    service = webhook["clientConfig"]["service"]
    assert service["path"] == f"/{admission.WEBHOOK_ID}"  # where kopf serves the handler
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["a"]
    # The operator serves the Secret's certificate; the API server trusts the caBundle's CA.
    tls = by_kind["Secret"]["data"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(webhook["clientConfig"]["caBundle"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(tls["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{service['name']}.sys.svc" in names.get_values_for_type(x509.DNSName)
    assert base64.b64decode(tls["ca.crt"]) == base64.b64decode(webhook["clientConfig"]["caBundle"])
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert "--webhook-port=9443" in args["containers"][0]["args"]
    # The Service sends the API server's calls only to a pod that already listens: one that
    # does not yet would have a job admitted unchecked (failurePolicy Ignore).
    probe = args["containers"][0]["readinessProbe"]
    assert probe["tcpSocket"] == {"port": "https-webhook"}


def test_an_unknown_value_is_refused_with_its_name(helm: Helm) -> None:
    result = helm.run("template", "rl", str(CHART), "--set", "operator.worker=3", check=False)
    assert result.returncode != 0
    assert "at '/operator': additional properties 'worker' not allowed" in result.stderr


def test_the_operator_with_the_charts_token_runs_a_job(
    kube: Kube, release: dict[str, str], tmp_path: Path
) -> None:
    jobs = release["jobs"]
    config = token_kubeconfig(kube, release["system"], release["account"], tmp_path / "sa.yaml")
    kube.apply(make_job("helm"), jobs)
    # The proof needs this operator to be the only one at work on the namespace.
    time.sleep(2)
    if kube.get("dtj", "helm", namespace=jobs).get("status"):
        pytest.skip("another operator reconciles every namespace in this test session")
    port, log_path = free_port(), tmp_path / "operator.log"
    argv = [sys.executable, "-m", "ringleader", f"--kubeconfig={config}", f"--namespace={jobs}"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen([*argv, f"--metrics-port={port}"], stdout=log, stderr=log)
    try:

        def running_or_exited() -> bool:
            # An operator that died (e.g. refused at startup) ends the wait at once.
            return job_phase(kube, jobs, "helm") == "Running" or process.poll() is not None

        wait_until(running_or_exited, what="job Running")
        assert process.poll() is None, "the operator exited"
        metrics = scrape(port)
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{log_path.read_text()[-4000:]}") from None
    finally:
        process.terminate()
        process.wait(timeout=15)
    log_text = log_path.read_text(errors="replace")
    assert metric_value(metrics, "ringleader_api_writes_total", verb="create", kind="Pod") >= 2
    assert metric_value(metrics, "ringleader_api_errors_total", status="403") == 0, log_text
    assert "Not enough permissions" not in log_text and "Forbidden" not in log_text, log_text


def test_the_charts_token_is_refused_what_the_operator_must_not_do(
    kube: Kube, release: dict[str, str], tmp_path: Path
) -> None:
    jobs, other = release["jobs"], release["other"]
    config = token_kubeconfig(kube, release["system"], release["account"], tmp_path / "sa.yaml")
    # What it needs, so that the refusals below are refusals of this token, not of any token.
    assert can_i(config, "create", "pods", "-n", jobs)
    assert can_i(
        config,
        "patch",
        "distributedtrainingjobs.ringleader.dev",
        "--subresource=status",
        "-n",
        jobs,
    )
    assert can_i(config, "watch", "customresourcedefinitions")
    assert can_i(config, "patch", "events.events.k8s.io", "-n", jobs)  # a repeat counts up
    assert can_i(config, "watch", "nodes")  # cluster-scoped even in namespaced mode
    for gang_api in ("scheduling.volcano.sh", "scheduling.x-k8s.io"):  # not served here
        assert allowed(config, "create", gang_api, "podgroups", jobs)
        assert not allowed(config, "delete", gang_api, "podgroups", jobs)
    for verb_and_resource in (
        ["get", "secrets", "-n", jobs],
        ["list", "secrets", "-A"],
        ["create", "pods", "-n", other],
        ["list", "pods", "-n", other],
        ["update", "distributedtrainingjobs.ringleader.dev", "-n", jobs],
        ["create", "pods", "--subresource=exec", "-n", jobs],
        ["create", "clusterrolebindings"],
        ["patch", "nodes"],
        ["delete", "nodes"],
    ):
        assert not can_i(config, *verb_and_resource), verb_and_resource
    # And real requests, not only the authorizer's opinion of them.
    secrets = as_user(config, "get", "secrets", "-n", jobs)
    assert secrets.returncode != 0 and "forbidden" in secrets.stderr.lower(), secrets.stderr
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "intruder"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    intruder = as_user(config, "create", "-n", other, "-f", "-", stdin=json.dumps(pod))
    assert intruder.returncode != 0 and "forbidden" in intruder.stderr.lower(), intruder.stderr


def test_upgrade_and_uninstall_keep_the_users_jobs_and_the_crd(helm: Helm, kube: Kube) -> None:
    system, jobs = fresh_namespace(kube, "rl-system"), fresh_namespace(kube, "rl-jobs")
    name = f"rl-{uuid.uuid4().hex[:6]}"
    try:
        chart = [name, str(CHART), "-n", system]
        watch_jobs = f"watchNamespaces={{{jobs}}}"
        helm.run("install", *chart, "--set", KWOK_ONLY, "--set", watch_jobs, "--take-ownership")
        kube.apply(make_job("kept"), jobs)
        # Changed values: cluster-wide now, and more memory.
        changes = ["--set-json", "watchNamespaces=[]", "--set", "resources.limits.memory=1Gi"]
        helm.run("upgrade", *chart, "--reuse-values", *changes)
        deployment = kube.get("deployment", f"{name}-ringleader", namespace=system)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["memory"] == "1Gi"
        assert not any(a.startswith("--namespace") for a in container["args"])
        assert kube.get("dtj", "kept", namespace=jobs)["metadata"]["name"] == "kept"
        helm.run("uninstall", name, "-n", system, "--wait")
        assert kube.get("dtj", "kept", namespace=jobs)["metadata"]["name"] == "kept"
        assert kube.get("crd", CRD_NAME)["metadata"]["name"] == CRD_NAME
        gone = kube.run("get", "clusterrole", f"{name}-ringleader", check=False)
        assert gone == ""
    finally:
        helm.run("uninstall", name, "-n", system, check=False)
        for namespace in (system, jobs):
            kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def test_upgrades_between_one_replica_and_two_change_the_update_strategy(
    helm: Helm, kube: Kube
) -> None:
    system = fresh_namespace(kube, "rl-system")
    name = f"rl-{uuid.uuid4().hex[:6]}"
    chart = [name, str(CHART), "-n", system, "--set", KWOK_ONLY, "--take-ownership"]

    def strategy() -> dict[str, Any]:
        found: dict[str, Any] = kube.get("deployment", f"{name}-ringleader", system)["spec"]
        return dict(found["strategy"])

    try:
        helm.run("install", *chart)
        assert strategy() == {"type": "Recreate"}  # one operator at a time
        helm.run("upgrade", *chart, "--set", "replicas=2")  # HA: peers hand over, rolling
        assert strategy()["type"] == "RollingUpdate"
        # Back to one: the rolling update's own fields must go with it (the API server refuses
        # a Recreate strategy that keeps them).
        helm.run("upgrade", *chart, "--set", "replicas=1")
        assert strategy() == {"type": "Recreate"}
    finally:
        helm.run("uninstall", name, "-n", system, check=False)
        kube.run("delete", "namespace", system, "--wait=false", check=False)
