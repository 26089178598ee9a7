"""The chart install of the local cluster's operator: its values, namespace and helm command."""

from __future__ import annotations

from pathlib import Path

from tools.localcluster import operatorchart
from tools.localcluster.layout import Layout
from tools.realnodes.kubelet import SYSTEM_TAINT


def test_the_operator_runs_the_local_image_never_pulled_and_only_on_the_system_node() -> None:
    values = operatorchart.build_values("localhost/ringleader/operator:0123abcd")
    assert values["image"] == {
        "repository": "localhost/ringleader/operator",
        "tag": "0123abcd",
        "pullPolicy": "Never",
    }
    assert values["nodeSelector"] == {"ringleader.dev/node-pool": "system"}
    [toleration] = values["tolerations"]
    key, _, rest = SYSTEM_TAINT.partition("=")
    assert (toleration["key"], f"{toleration['value']}:{toleration['effect']}") == (key, rest)


def test_the_operators_namespace_enforces_the_restricted_standard() -> None:
    labels = operatorchart.build_namespace()["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_helm_installs_or_upgrades_the_chart_waiting_for_it_with_its_state_in_the_cluster(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path / "cluster", tmp_path / "bin", 17400)
    argv = operatorchart.install_argv(layout, tmp_path / "values.json")
    assert argv[0] == str(tmp_path / "bin" / "helm")
    assert argv[2:5] == ["upgrade", "--install", operatorchart.RELEASE]
    assert {"--take-ownership", "--wait", f"--values={tmp_path / 'values.json'}"} <= set(argv)
    env = operatorchart.helm_env(layout)
    assert all(path.startswith(str(layout.root)) for path in env.values())
