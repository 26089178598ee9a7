"""Pure pieces of the local node agent: addresses, hosts files, env, status, volumes."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from tools.localcluster.addons import pod_network
from tools.localcluster.layout import Layout
from tools.nodeagent import envvars, hostsfile, podstatus, provisioner, volumes
from tools.nodeagent.config import VENV_BIN, veth_names
from tools.nodeagent.ipam import AddressBook, PoolExhausted, pick_address
from tools.nodeagent.mountpoints import Mountpoints
from tools.nodeagent.nodes import vanished_nodes

NET = ipaddress.IPv4Network("10.250.0.0/16")


def _pod(name: str = "w-0", namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {"app": "job"})
    status = spec.pop("status", {})
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels},
        "spec": {"nodeName": "local-0", "containers": [{"name": "main"}], **spec},
        "status": status,
    }


def _running(ip: str, ready: bool = True) -> dict[str, Any]:
    ready_condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {"phase": "Running", "podIP": ip, "conditions": [ready_condition]}


def _headless(name: str = "job", publish: bool = False) -> dict[str, Any]:
    spec = {"clusterIP": "None", "selector": {"app": "job"}, "publishNotReadyAddresses": publish}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


# --- addresses -------------------------------------------------------------------------------


def test_addresses_start_after_the_gateway_and_skip_taken_ones() -> None:
    assert str(pick_address(NET, set(), None)) == "10.250.0.2"
    assert str(pick_address(NET, {"10.250.0.2"}, None)) == "10.250.0.3"


def test_addresses_go_round_robin_so_a_freed_one_is_not_reused_at_once() -> None:
    assert str(pick_address(NET, set(), "10.250.0.7")) == "10.250.0.8"


def test_a_full_range_raises() -> None:
    tiny = ipaddress.IPv4Network("10.0.0.0/30")  # .2 is the only host address after the gateway
    with pytest.raises(PoolExhausted):
        pick_address(tiny, {"10.0.0.2"}, None)


def test_allocations_survive_a_restart_and_are_stable_per_owner(tmp_path: Path) -> None:
    book = AddressBook(tmp_path / "ipam.json", NET)
    first, second = book.allocate("a"), book.allocate("b")
    assert book.allocate("a") == first
    reloaded = AddressBook(tmp_path / "ipam.json", NET)
    assert reloaded.allocate("b") == second
    reloaded.release("a")
    assert reloaded.allocate("c") not in (first, second)


def test_veth_names_fit_the_kernel_limit_of_15_characters() -> None:
    names = veth_names("0123e4567-e89b-12d3-a456-426614174000")
    assert all(len(name) <= 15 for name in names)
    assert names[0] != names[1]


def test_the_test_cluster_agent_gets_another_bridge_and_range_than_the_dev_one() -> None:
    dev = pod_network(Layout(Path("/tmp/a"), Path("/tmp/b"), 16400))
    test = pod_network(Layout(Path("/tmp/a"), Path("/tmp/b"), 17400))
    assert dev == ("rlbr0", "10.250.0.0/16")
    assert test[0] != dev[0] and test[1] != dev[1]


# --- hosts files -----------------------------------------------------------------------------


def test_a_headless_service_resolves_in_every_form_to_its_ready_pods() -> None:
    pods = [
        _pod("w-0", status=_running("10.250.0.2")),
        _pod("w-1", status=_running("10.250.0.3", ready=False)),
    ]
    text = hostsfile.render_hosts(pods[0], "10.250.0.2", [_headless()], pods)
    line = "10.250.0.2\tjob.ns.svc.cluster.local job.ns.svc job.ns job"
    assert line in text.splitlines()
    assert "10.250.0.3\tjob" not in text


def test_publish_not_ready_addresses_lists_unready_pods_too() -> None:
    pods = [_pod("w-1", status=_running("10.250.0.3", ready=False))]
    text = hostsfile.render_hosts(pods[0], "10.250.0.3", [_headless(publish=True)], pods)
    assert "10.250.0.3\tjob.ns.svc.cluster.local" in text


def test_hostname_and_subdomain_give_a_per_pod_name_and_the_own_line_leads_with_the_fqdn() -> None:
    pod = _pod("w-0", hostname="w-0", subdomain="job", status=_running("10.250.0.2"))
    lines = hostsfile.render_hosts(pod, "10.250.0.2", [_headless()], [pod]).splitlines()
    assert "10.250.0.2\tw-0.job.ns.svc.cluster.local w-0" in lines
    forms = "w-0.job.ns.svc.cluster.local w-0.job.ns.svc w-0.job.ns w-0.job"
    assert f"10.250.0.2\t{forms}" in lines


def test_finished_terminating_and_other_namespace_pods_and_cluster_ip_services_are_left_out() -> (
    None
):
    done = _pod("done", status={**_running("10.250.0.4"), "phase": "Succeeded"})
    elsewhere = _pod("far", namespace="other", status=_running("10.250.0.5"))
    going = _pod("going", status=_running("10.250.0.6"))
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    me = _pod("me", labels={}, status=_running("10.250.0.2"))
    cluster_ip = {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"clusterIP": "10.96.0.9"},
    }
    services = [_headless(), cluster_ip]
    text = hostsfile.render_hosts(me, "10.250.0.2", services, [me, done, elsewhere, going])
    assert not any(ip in text for ip in ("10.250.0.4", "10.250.0.5", "10.250.0.6"))
    assert "web" not in text


def test_resolv_conf_searches_the_namespace_first() -> None:
    assert "search ns.svc.cluster.local svc.cluster.local" in hostsfile.render_resolv_conf("ns")


# --- environment -----------------------------------------------------------------------------


def _lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
    return {"mode": "fast"} if (kind, name) == ("configMap", "settings") else None


def test_env_resolves_field_refs_config_maps_and_earlier_variables() -> None:
    container = {
        "name": "main",
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "GREETING", "value": "hi $(POD) $$(POD) $(MISSING)"},
        ],
    }
    facts = envvars.PodFacts(pod_ip="10.250.0.2", host_ip="10.250.0.1")
    env = envvars.build_env(_pod(), container, facts, _lookup)
    assert (env["POD"], env["IP"], env["HOST"], env["APP"]) == (
        "w-0", "10.250.0.2", "10.250.0.1", "job",
    )  # fmt: skip
    assert env["MODE"] == "fast"
    assert env["GREETING"] == "hi w-0 $(POD) $(MISSING)"
    assert env["PATH"].startswith(VENV_BIN + ":")


def test_a_missing_config_map_key_is_an_error_unless_optional() -> None:
    ref = {"name": "absent", "key": "k"}
    container = {"name": "main", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": ref}}]}
    facts = envvars.PodFacts("", "")
    with pytest.raises(envvars.EnvError):
        envvars.build_env(_pod(), container, facts, _lookup)
    ref["optional"] = True  # type: ignore[assignment]
    assert "X" not in envvars.build_env(_pod(), container, facts, _lookup)


@pytest.mark.parametrize(
    ("resources", "threads"),
    [({}, 1), ({"requests": {"cpu": "1500m"}}, 2), ({"limits": {"cpu": "3"}}, 3),
     ({"requests": {"cpu": "100m"}, "limits": {"cpu": "4"}}, 1)],
)  # fmt: skip
def test_thread_counts_follow_the_cpu_request_or_limit(
    resources: dict[str, Any], threads: int
) -> None:
    assert envvars.cpu_threads({"resources": resources}) == threads


def test_thread_variables_set_by_the_container_win() -> None:
    container = {"name": "main", "env": [{"name": "OMP_NUM_THREADS", "value": "8"}]}
    env = envvars.build_env(_pod(), container, envvars.PodFacts("", ""), _lookup)
    assert (env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) == ("8", "1")


def test_argv_expands_variables_and_a_missing_command_is_refused() -> None:
    container = {"name": "main", "command": ["python", "-m", "$(MOD)"], "args": ["--rank=$(R)"]}
    assert envvars.build_argv(container, {"MOD": "trainer", "R": "0"}) == [
        "python", "-m", "trainer", "--rank=0",
    ]  # fmt: skip
    with pytest.raises(envvars.EnvError, match="entrypoint"):
        envvars.build_argv({"name": "main", "args": ["x"]}, {})


# --- status ----------------------------------------------------------------------------------


def _run(**fields: Any) -> podstatus.ContainerRun:
    return podstatus.ContainerRun("main", "img", **fields)


@pytest.mark.parametrize(
    ("runs", "phase"),
    [
        ([_run()], "Pending"),
        ([_run(pid=5, started_at="t", waiting_reason=None)], "Running"),
        ([_run(pid=5, started_at="t", exit_code=0)], "Succeeded"),
        ([_run(pid=5, started_at="t", exit_code=0), _run(pid=6, started_at="t", exit_code=3)],
         "Failed"),
        ([_run(pid=5, started_at="t", waiting_reason=podstatus.BACKOFF)], "Running"),
    ],
)  # fmt: skip
def test_phase_follows_the_containers(runs: list[podstatus.ContainerRun], phase: str) -> None:
    assert podstatus.compute_phase(runs) == phase


def test_a_running_pod_reports_ip_ready_conditions_and_a_running_container() -> None:
    run = _run(pid=42, started_at="2026-01-01T00:00:00Z", waiting_reason=None, ready=True)
    report = podstatus.PodReport([run], "10.250.0.2", "10.250.0.1", "2026-01-01T00:00:00Z")
    status = podstatus.build_pod_status(report, "2026-01-01T00:00:01Z")
    assert status["phase"] == "Running"
    assert status["podIPs"] == [{"ip": "10.250.0.2"}]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Initialized": "True", "ContainersReady": "True", "Ready": "True", "PodScheduled": "True",
    }  # fmt: skip
    container = status["containerStatuses"][0]
    assert container["state"] == {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    assert (container["ready"], container["containerID"]) == (True, "local://42")


def test_an_unready_probe_keeps_the_pod_unready_and_transition_times_stay_put() -> None:
    run = _run(pid=42, started_at="t0", waiting_reason=None, ready=False)
    previous = [{"type": "Ready", "status": "False", "lastTransitionTime": "t0"}]
    report = podstatus.PodReport([run], "10.250.0.2", "h", "t0", previous_conditions=previous)
    status = podstatus.build_pod_status(report, "t9")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", "t0")


def test_a_failed_container_reports_its_exit_code_and_reason() -> None:
    run = _run(pid=42, started_at="t0", exit_code=3, finished_at="t1")
    status = podstatus.build_container_status(run)
    terminated = status["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["finishedAt"]) == (
        3, "Error", "t1",
    )  # fmt: skip


# --- volumes and provisioning ----------------------------------------------------------------


def test_mounts_follow_volume_mounts_with_sub_paths_parents_first() -> None:
    container = {
        "volumeMounts": [
            {"name": "data", "mountPath": "/data/inner", "subPath": "x", "readOnly": True},
            {"name": "data", "mountPath": "/data"},
        ]
    }
    mounts = volumes.build_mounts(container, {"data": "/host/data"})
    assert mounts == [
        volumes.Mount("/host/data", "/data", False),
        volumes.Mount("/host/data/x", "/data/inner", True),
    ]


def test_unsupported_volume_types_are_named() -> None:
    pod = _pod(volumes=[{"name": "ok", "emptyDir": {}}, {"name": "bad", "iscsi": {}}])
    assert volumes.find_unsupported(pod) == ["bad (iscsi)"]


@pytest.mark.parametrize(
    ("quantity", "size"), [("64Mi", 64 * 2**20), ("1G", 10**9), ("512", 512), ("1.5Gi", 3 * 2**29)]
)
def test_memory_quantities_convert_to_bytes(quantity: str, size: int) -> None:
    assert volumes.quantity_bytes(quantity) == size


def test_created_mountpoints_are_removed_only_when_unused(tmp_path: Path) -> None:
    points = Mountpoints(tmp_path / "points.json")
    points.ensure(str(tmp_path / "a" / "b"))
    points.ensure(str(tmp_path / "c"))
    points.release({str(tmp_path / "a" / "b")})
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "c").exists()
    Mountpoints(tmp_path / "points.json").release(set())
    assert not (tmp_path / "a").exists()


def _claim(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "ckpt", "namespace": "ns", "uid": "u-1"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "2Gi"}},
                 **spec},
        "status": {"phase": "Pending"},
    }  # fmt: skip


def test_a_pending_claim_of_our_class_or_none_gets_a_pre_bound_volume_of_its_size() -> None:
    assert provisioner.wants_volume(_claim(storageClassName="ringleader-local"))
    assert provisioner.wants_volume(_claim())
    assert not provisioner.wants_volume(_claim(storageClassName="other"))
    assert not provisioner.wants_volume(_claim(volumeName="pv-1"))
    volume = provisioner.build_volume(_claim(), Path("/v/pvc-u-1"))
    spec = volume["spec"]
    assert spec["capacity"] == {"storage": "2Gi"}
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["claimRef"]["uid"] == "u-1"
    assert spec["hostPath"]["path"] == "/v/pvc-u-1"


def test_only_our_released_volumes_are_deleted() -> None:
    volume = provisioner.build_volume(_claim(), Path("/v/pvc-u-1"))
    volume["status"] = {"phase": "Released"}
    assert provisioner.is_released(volume)
    volume["metadata"]["annotations"] = {}
    assert not provisioner.is_released(volume)


def test_a_termination_message_is_reported_only_when_the_container_left_one() -> None:
    quiet = podstatus.build_terminated(_run(pid=5, started_at="t", exit_code=0))
    spoke = podstatus.build_terminated(
        _run(pid=5, started_at="t", exit_code=1, termination_message='{"step": 3}')
    )
    assert "message" not in quiet
    assert spoke["message"] == '{"step": 3}'


@pytest.mark.parametrize(
    ("seen", "present", "vanished"),
    [
        ({"u0", "u1"}, {"u0", "u1"}, []),  # both still there
        ({"u0", "u1"}, {"u0"}, ["local-1"]),  # deleted after the watch had shown it
        ({"u0"}, {"u0"}, []),  # just registered, not shown by the watch yet: not deleted
        ({"u0", "u1"}, {"u0", "u1-old"}, ["local-1"]),  # another object of the same name
    ],
)
def test_a_node_has_vanished_only_once_the_watch_showed_it_and_then_lost_it(
    seen: set[str], present: set[str], vanished: list[str]
) -> None:
    assert vanished_nodes({"local-0": "u0", "local-1": "u1"}, seen, present) == vanished
