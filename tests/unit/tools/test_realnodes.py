"""Pure pieces of real nodes: names, configuration files, command lines, mounts, host registry."""

from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path

import pytest
import yaml

from tools.realnodes import cni, containerd, coredns, kubelet, kubeproxy, mounts
from tools.realnodes.hostshare import SYSCTLS, HostShare, missing_ancestors
from tools.realnodes.naming import (
    SYSTEM_NODE,
    ClusterNaming,
    NamingError,
    local_node_names,
    node_index,
)
from tools.realnodes.nodedirs import NodeDirs, check_socket_path
from tools.realnodes.toml import dumps

DEV, TEST = ClusterNaming(16400), ClusterNaming(17400)


def _dirs(tmp_path: Path) -> NodeDirs:
    return NodeDirs(tmp_path / "nodes" / "local-0")


def test_the_developer_and_test_clusters_get_names_and_ranges_apart() -> None:
    dev, test = DEV.node(0, "local-0"), TEST.node(0, "local-0")
    assert (dev.bridge, test.bridge) == ("rn164-b0", "rn174-b0")
    assert dev.cgroup_root != test.cgroup_root
    assert not DEV.network.overlaps(TEST.network)
    assert DEV.host_interface != TEST.host_interface


def test_names_fit_an_interface_name_at_the_highest_port_base_and_node_index() -> None:
    node = ClusterNaming(25500).node(199, "local-199")
    for name in (node.bridge, node.cluster.host_interface):
        assert len(name) <= 15
        assert name.startswith("rn")


def test_each_node_gets_its_own_pod_range_and_a_node_ip_outside_every_pod_range() -> None:
    nodes = [DEV.node(index, f"local-{index}") for index in range(3)]
    ranges = [ipaddress.IPv4Network(node.pod_cidr) for node in nodes]
    assert all(not a.overlaps(b) for a in ranges for b in ranges if a is not b)
    for node in nodes:
        assert ipaddress.IPv4Address(node.gateway) in ipaddress.IPv4Network(node.pod_cidr)
        assert all(ipaddress.IPv4Address(node.node_ip) not in r for r in ranges)
        assert ipaddress.IPv4Address(node.node_ip) in DEV.network
    assert ipaddress.IPv4Address(DEV.dns_ip) in DEV.network


def test_local_nodes_are_numbered_and_the_system_node_takes_the_last_index() -> None:
    assert local_node_names(2) == ["local-0", "local-1"]
    assert [node_index(name) for name in local_node_names(3)] == [0, 1, 2]
    system = DEV.node(node_index(SYSTEM_NODE), SYSTEM_NODE)
    assert system.pool == "system" and DEV.node(0, "local-0").pool == "local"
    assert system.pod_cidr not in {
        DEV.node(i, "n").pod_cidr for i in range(node_index(SYSTEM_NODE))
    }
    for name in ("local-", "local-x", "node-1", "local-199"):
        with pytest.raises(NamingError):
            node_index(name)


def test_only_the_system_node_is_tainted_and_each_node_is_labelled_with_its_pool(
    tmp_path: Path,
) -> None:
    dirs = _dirs(tmp_path)
    training = kubelet.argv("/bin/kubelet", DEV.node(0, "local-0"), dirs)
    system = kubelet.argv("/bin/kubelet", DEV.node(node_index(SYSTEM_NODE), SYSTEM_NODE), dirs)
    assert "--node-labels=ringleader.dev/node-pool=local" in training
    assert not any(arg.startswith("--register-with-taints") for arg in training)
    assert "--node-labels=ringleader.dev/node-pool=system" in system
    assert f"--register-with-taints={kubelet.SYSTEM_TAINT}" in system


@pytest.mark.parametrize("port_base", [16450, 0, 25600])
def test_a_port_base_that_cannot_name_a_cluster_apart_is_refused(port_base: int) -> None:
    with pytest.raises(NamingError):
        ClusterNaming(port_base)


def test_the_toml_writer_round_trips_containerds_kinds_of_values() -> None:
    document = {
        "version": 3,
        "root": '/a b/"quoted"',
        "list": ["x", "y"],
        "plugins": {"io.containerd.cri.v1.runtime": {"flag": True, "cni": {"dirs": ["/c"]}}},
    }
    assert tomllib.loads(dumps(document)) == document


def test_containerd_keeps_everything_under_the_node_and_pins_the_local_pause_image(
    tmp_path: Path,
) -> None:
    dirs = _dirs(tmp_path)
    config = tomllib.loads(containerd.render_config(dirs, "localhost/ringleader/pause:k"))
    assert config["root"] == str(dirs.containerd_root)
    assert config["state"] == str(dirs.containerd_state)
    assert config["grpc"]["address"] == str(dirs.containerd_socket)
    assert config["imports"] == []
    assert "io.containerd.nri.v1.nri" in config["disabled_plugins"]
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == "localhost/ringleader/pause:k"
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True  # root here lacks CAP_SYS_RESOURCE
    assert runtime["netns_mounts_under_state_dir"] is True
    assert runtime["cni"]["conf_dir"] == str(dirs.cni_conf_dir)
    options = runtime["containerd"]["runtimes"]["runc"]["options"]
    assert (options["BinaryName"], options["SystemdCgroup"]) == (containerd.RUNC, False)


def test_the_kubelet_binds_its_node_ip_uses_its_cgroup_root_and_the_cluster_dns(
    tmp_path: Path,
) -> None:
    node, dirs = DEV.node(1, "local-1"), _dirs(tmp_path)
    config = yaml.safe_load(kubelet.render_config(node, dirs, tmp_path / "ca.crt"))
    assert config["kind"] == "KubeletConfiguration"
    assert config["failCgroupV1"] is False
    assert (config["address"], config["healthzBindAddress"]) == (node.node_ip, node.node_ip)
    assert config["cgroupRoot"] == node.cgroup_root
    assert config["clusterDNS"] == [DEV.dns_ip]
    assert config["makeIPTablesUtilChains"] is False
    assert config["containerRuntimeEndpoint"] == f"unix://{dirs.containerd_socket}"
    assert config["authentication"]["anonymous"]["enabled"] is False
    argv = kubelet.argv("/bin/kubelet", node, dirs)
    assert f"--node-ip={node.node_ip}" in argv
    assert "--node-labels=ringleader.dev/node-pool=local" in argv


def test_the_cni_network_is_a_bridge_of_the_nodes_own_without_masquerading() -> None:
    node = DEV.node(2, "local-2")
    conflist = json.loads(cni.render_conflist(node))
    [bridge] = conflist["plugins"]
    assert bridge["bridge"] == node.bridge
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.pod_cidr, "gateway": node.gateway}]]


def test_coredns_answers_on_the_cluster_dns_address_from_the_api_server(tmp_path: Path) -> None:
    text = coredns.render_corefile(DEV, tmp_path / "coredns.kubeconfig", 16453)
    assert f"bind {DEV.dns_ip}" in text
    assert f"kubeconfig {tmp_path / 'coredns.kubeconfig'}" in text
    assert "kubernetes cluster.local" in text
    assert "ready 127.0.0.1:16453" in text


def test_each_cluster_routes_its_services_through_a_namespace_and_table_of_its_own() -> None:
    for cluster in (DEV, TEST, ClusterNaming(25500)):
        assert len(cluster.service_link) <= 15 and len(cluster.service_netns) <= 15
        for address in (cluster.service_host_ip, cluster.service_router_ip, cluster.apiserver_ip):
            assert ipaddress.IPv4Address(address) in cluster.network
    assert DEV.service_netns != TEST.service_netns
    assert DEV.routing_table != TEST.routing_table
    # The router's /30 is apart from every node's pod range.
    router = ipaddress.IPv4Network(f"{DEV.service_host_ip}/30", strict=False)
    assert not any(router.overlaps(ipaddress.IPv4Network(DEV.node(i, "n").pod_cidr))
                   for i in range(200))  # fmt: skip


def test_kube_proxy_masquerades_every_service_connection_and_leaves_host_conntrack_alone(
    tmp_path: Path,
) -> None:
    config = kubeproxy.build_config(DEV, tmp_path / "kp.kubeconfig", "local-0")
    assert config["mode"] == "iptables"
    assert config["iptables"]["masqueradeAll"] is True  # replies come back through the router
    assert config["clusterCIDR"] == str(DEV.network)
    assert config["conntrack"]["maxPerCore"] == 0
    assert config["healthzBindAddress"].startswith(f"{DEV.service_router_ip}:")
    assert kubeproxy.healthz_url(DEV).startswith(f"http://{DEV.service_router_ip}:")
    argv = kubeproxy.argv("/bin/kube-proxy", DEV, tmp_path / "kp.yaml")
    assert argv[:4] == ["ip", "netns", "exec", DEV.service_netns]


def test_a_socket_path_too_long_for_unix_sockets_is_refused_early(tmp_path: Path) -> None:
    check_socket_path(Path("/work/x/.cluster/nodes/local-0/run/containerd.sock"))
    with pytest.raises(ValueError, match="too long"):
        check_socket_path(Path("/" + "d" * 100) / "containerd.sock")


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 27 254:0 /n/kubelet /n/kubelet rw shared:5 - ext4 /dev/vda rw
91 90 0:50 / /n/kubelet/pods/u/volumes/secret rw - tmpfs tmpfs rw
92 27 0:51 / /n-other/x rw - tmpfs tmpfs rw
93 27 0:52 / /n/with\\040space rw - tmpfs tmpfs rw
"""


def test_mounts_under_a_node_are_found_deepest_first_and_only_there() -> None:
    found = mounts.mounts_under(Path("/n"), MOUNTINFO)
    assert found == ["/n/with space", "/n/kubelet/pods/u/volumes/secret", "/n/kubelet"]


def test_a_daemon_runs_in_a_mount_namespace_with_its_binds_then_its_own_argv() -> None:
    argv = mounts.in_mount_namespace([(Path("/node/run"), "/run/containerd")], ["/bin/d", "-x"])
    assert argv[:5] == ["unshare", "--mount", "--propagation", "unchanged", "--"]
    script_args = argv[argv.index("sh", 6) + 1 :]
    assert script_args == ["/node/run", "/run/containerd", "--", "/bin/d", "-x"]


def _fake_proc_sys(tmp_path: Path, value: str) -> Path:
    proc_sys = tmp_path / "proc-sys"
    for name in SYSCTLS:
        path = proc_sys / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return proc_sys


def test_the_last_cluster_to_leave_restores_sysctls_and_removes_the_mount_points(
    tmp_path: Path,
) -> None:
    proc_sys = _fake_proc_sys(tmp_path, "0")
    share = HostShare(tmp_path / "registry", proc_sys)
    mountpoint = tmp_path / "var" / "lib" / "kubelet" / "device-plugins"
    running = {"164", "174"}

    def alive(root: Path) -> bool:
        return root.name in running

    share.join("164", tmp_path / "164", [str(mountpoint)], alive)
    share.join("174", tmp_path / "174", [str(mountpoint)], alive)
    (proc_sys / "kernel" / "panic").write_text("10\n")  # the kubelets change it
    running.discard("164")
    assert share.leave("164", alive) is False  # 174 still runs: nothing is undone
    assert mountpoint.exists()
    assert (proc_sys / "kernel" / "panic").read_text() == "10\n"
    running.discard("174")
    assert share.leave("174", alive) is True
    assert (proc_sys / "kernel" / "panic").read_text() == "0\n"
    assert not (tmp_path / "var").exists()
    assert not (tmp_path / "registry").exists()


def test_a_cluster_that_died_without_down_does_not_keep_the_host_from_being_restored(
    tmp_path: Path,
) -> None:
    proc_sys = _fake_proc_sys(tmp_path, "1")
    share = HostShare(tmp_path / "registry", proc_sys)
    share.join("164", tmp_path / "164", [], lambda root: True)
    share.join("174", tmp_path / "174", [], lambda root: True)
    (proc_sys / "vm" / "overcommit_memory").write_text("0\n")
    assert share.leave("174", lambda root: False) is True  # 164 crashed: nothing of it runs
    assert (proc_sys / "vm" / "overcommit_memory").read_text() == "1\n"


def test_only_the_missing_parents_of_a_mount_point_are_created(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    missing = missing_ancestors(tmp_path / "var" / "lib" / "kubelet")
    assert missing == [tmp_path / "var" / "lib", tmp_path / "var" / "lib" / "kubelet"]
