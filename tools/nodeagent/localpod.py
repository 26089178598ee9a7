"""One pod's lifecycle on a local node: set up, start containers, watch, restart, terminate."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import network, sandboxes, volumes
from .envvars import EnvError, PodFacts, build_argv, build_env
from .kubeapi import is_status
from .podstatus import (
    BACKOFF,
    ContainerRun,
    PodReport,
    build_pod_status,
    build_rejection,
    build_terminated,
    now_rfc3339,
)
from .probes import SANDBOX, Prober
from .sandboxes import Context, kill_group

log = logging.getLogger(__name__)
HostsRenderer = Callable[[str], str]  # pod IP → the pod's /etc/hosts
SETUP_RETRY_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 20.0


# As the kubelet: the default terminationMessagePath, and how much of the file it keeps.
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096


def signal_container(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal a container as a container runtime does: a stop request (SIGTERM) goes to its
    main process only, which decides how to stop its children; SIGKILL ends its whole process
    group. Only while the leader is not yet reaped: until then its pid cannot be reused;
    afterwards the same number may name another process on this machine.
    """
    if process.returncode is None and process.poll() is None:
        if sig == signal.SIGKILL:
            kill_group(process.pid, sig)
        else:
            os.kill(process.pid, sig)


def termination_path(container: dict[str, Any]) -> str:
    """Where the container may leave its termination message."""
    return str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)


def exit_code(returncode: int) -> int:
    """A shell-style exit code: 128 + signal number for a process killed by a signal."""
    return returncode if returncode >= 0 else 128 - returncode


def check_supported(pod: dict[str, Any]) -> str:
    """Why the agent cannot run this pod, or "" when it can."""
    if pod["spec"].get("initContainers"):
        return "init containers are not supported by the local node agent"
    unsupported = volumes.find_unsupported(pod)
    if unsupported:
        return f"volumes not supported by the local node agent: {', '.join(unsupported)}"
    return ""


def _previous_runs(pod: dict[str, Any]) -> dict[str, ContainerRun]:
    """Containers as the pod's status reports them (a restarted agent continues from there)."""
    runs = {}
    reported = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
    for container in pod["spec"]["containers"]:
        run = ContainerRun(container["name"], container.get("image", ""))
        before = reported.get(container["name"], {})
        run.restart_count = before.get("restartCount", 0)
        if "running" in before.get("state", {}) or "terminated" in before.get("state", {}):
            run.started_at = "lost"  # marks: started under a previous agent
        runs[run.name] = run
    return runs


class LocalPod:
    """The agent's view of one pod it runs."""

    def __init__(self, pod: dict[str, Any], context: Context) -> None:
        meta = pod["metadata"]
        self.uid, self.namespace, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.pod, self.context = pod, context
        self.runs = _previous_runs(pod)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.probers: dict[str, Prober] = {}
        self.next_start: dict[str, float] = {}
        self.ip: str | None = None
        self.sources: dict[str, str] | None = None
        self.start_time = pod.get("status", {}).get("startTime") or now_rfc3339()
        self.next_setup = 0.0
        self.message = ""
        self.kill_deadline: float | None = None
        self.render_hosts: HostsRenderer = lambda ip: ""
        self.last_status: Any = None
        self.done = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        self.gone = False
        self._resume_after_agent_restart()

    @property
    def policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def _resume_after_agent_restart(self) -> None:
        """Containers a previous agent started are lost: restart or fail them per policy."""
        for run in self.runs.values():
            if run.started_at != "lost":
                continue
            run.started_at = None
            if self.policy != "Never":
                run.restart_count += 1
            elif not self.done:
                run.started_at = run.finished_at = now_rfc3339()
                run.exit_code = 137
                self.message = "the local node agent restarted and lost this container"

    # --- the loop's entry point -------------------------------------------------------------

    def sync(self, pod: dict[str, Any], render_hosts: HostsRenderer) -> None:
        """Bring the pod one step closer to what its object asks for; report status."""
        self.pod, self.render_hosts = pod, render_hosts
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate()
            return
        if self.done:
            return
        reason = check_supported(pod)
        if reason:
            self._reject("Unsupported", reason)
            return
        if self.sources is None and time.monotonic() >= self.next_setup:
            self._set_up()
        if self.sources is not None:
            self._collect_exits()
            self._start_due()
            for name, prober in self.probers.items():
                if self.runs[name].running:
                    prober.tick()
                    self.runs[name].ready = prober.ready
        if all(run.exit_code is not None for run in self.runs.values()):
            self._finish()
        self._report()

    def refresh_hosts(self) -> None:
        """Rewrite the pod's /etc/hosts if the names it should resolve changed."""
        if self.ip is not None and self.sources is not None and not self.done:
            etc = sandboxes.etc_dir(self.context.state, self.uid)
            sandboxes.write_in_place(etc / "hosts", self.render_hosts(self.ip))

    # --- setting up and starting --------------------------------------------------------------

    def _facts(self) -> PodFacts:
        return PodFacts(pod_ip=self.ip or "", host_ip=self.context.host_ip)

    def _set_up(self) -> None:
        try:
            if self.ip is None:
                self.ip = sandboxes.create_sandbox(self.context, self.pod, self.render_hosts)
            root = self.context.state.pod_dir(self.uid) / "volumes"
            self.sources = volumes.prepare_volumes(self.pod, self._facts(), self.context.kube, root)
            self.message = ""
        except volumes.VolumeNotReady as error:
            self.message = str(error)
        except Exception as error:
            log.exception("setting up %s/%s failed", self.namespace, self.name)
            self.message = f"setting up the pod failed: {error}"
        if self.sources is None:
            self.next_setup = time.monotonic() + SETUP_RETRY_SECONDS
            for run in self.runs.values():
                run.waiting_message = self.message

    def _container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.pod["spec"]["containers"] if c["name"] == name)

    def _start_due(self) -> None:
        now = time.monotonic()
        for name, run in self.runs.items():
            waiting = name not in self.processes and run.exit_code is None
            if waiting and now >= self.next_start.get(name, 0.0):
                self._start(self._container(name), run)

    def _build_spec(self, container: dict[str, Any]) -> dict[str, Any]:
        assert self.sources is not None
        env = build_env(self.pod, container, self._facts(), self.context.kube.config_text)
        argv = build_argv(container, env)
        etc = sandboxes.etc_dir(self.context.state, self.uid)
        mounts = [volumes.Mount(str(etc / name), f"/etc/{name}") for name in sandboxes.ETC_FILES]
        mounts += volumes.build_mounts(container, self.sources)
        mounts.append(self._termination_log(container))
        for mount in mounts:
            if not Path(mount.source).exists():  # a subPath the kubelet would create
                Path(mount.source).mkdir(parents=True)
            self.context.mountpoints.ensure(mount.target, Path(mount.source).is_dir())
        cwd = container.get("workingDir") or "/"
        self.context.mountpoints.ensure(cwd)
        hostname = self.pod["spec"].get("hostname") or self.name
        return {
            "mode": "run",
            "netns": str(network.netns_path(self.uid)),
            "hostname": hostname,
            "mounts": [
                {"source": m.source, "target": m.target, "readOnly": m.read_only} for m in mounts
            ],
            "cwd": cwd,
            "argv": argv,
            "env": env,
        }

    def _termination_file(self, name: str) -> Path:
        return self.context.state.pod_dir(self.uid) / "run" / f"{name}.termination-log"

    def _termination_log(self, container: dict[str, Any]) -> volumes.Mount:
        """An empty file at the container's terminationMessagePath, read back when it exits."""
        host_file = self._termination_file(container["name"])
        host_file.parent.mkdir(parents=True, exist_ok=True)
        host_file.write_text("")
        return volumes.Mount(str(host_file), termination_path(container))

    def _read_termination_message(self, name: str) -> str:
        try:
            with self._termination_file(name).open("rb") as message:
                return message.read(TERMINATION_MESSAGE_LIMIT).decode(errors="replace")
        except OSError:
            return ""

    def _start(self, container: dict[str, Any], run: ContainerRun) -> None:
        try:
            spec = self._build_spec(container)
        except EnvError as error:
            run.waiting_reason, run.waiting_message = "CreateContainerConfigError", str(error)
            self.next_start[run.name] = time.monotonic() + SETUP_RETRY_SECONDS
            return
        run_dir = self.context.state.pod_dir(self.uid) / "run"
        run_dir.mkdir(exist_ok=True)
        spec_file = run_dir / f"{run.name}.json"
        spec_file.write_text(json.dumps(spec))
        log_file = self.context.state.log_file(self.namespace, self.name, run.name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if run.started_at is not None:
            run.restart_count += 1
        with open(log_file, "ab") as out:
            header = f"==> {now_rfc3339()} start uid={self.uid} restart={run.restart_count}\n"
            out.write(header.encode())
            out.flush()
            process = subprocess.Popen(
                [sys.executable, "-I", SANDBOX, str(spec_file)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd="/",
            )  # fmt: skip
        sandboxes.remember_pid(self.context.state, self.uid, process.pid)
        self.processes[run.name] = process
        run.pid, run.started_at, run.waiting_reason, run.waiting_message = (
            process.pid, now_rfc3339(), None, ""
        )  # fmt: skip
        probe = container.get("readinessProbe")
        run.ready, run.has_probe = probe is None, probe is not None
        if probe is not None and self.ip is not None:
            prober = Prober(probe, container, self.ip, run_dir / f"{run.name}.probe.json")
            prober.start(process.pid, spec["env"], spec["cwd"])
            self.probers[run.name] = prober

    # --- exits, restarts, the end ----------------------------------------------------------

    def _should_restart(self, code: int) -> bool:
        return self.policy == "Always" or (self.policy == "OnFailure" and code != 0)

    def _collect_exits(self) -> None:
        for name, process in list(self.processes.items()):
            returncode = process.poll()
            if returncode is None:
                continue
            del self.processes[name]
            kill_group(process.pid, signal.SIGKILL)  # what it left behind in its group
            run, code = self.runs[name], exit_code(returncode)
            run.finished_at = now_rfc3339()
            run.termination_message = self._read_termination_message(name)
            if name in self.probers:
                self.probers[name].stop()
            run.ready = False
            if not self._should_restart(code):
                run.exit_code = code
                continue
            run.exit_code = code
            run.last_terminated = build_terminated(run)
            run.exit_code, run.waiting_reason = None, BACKOFF
            run.waiting_message = f"back-off restarting after exit code {code}"
            delay = min(2.0 ** min(run.restart_count, 10), MAX_BACKOFF_SECONDS)
            self.next_start[name] = time.monotonic() + delay

    def _finish(self) -> None:
        """Every container finished for good: take the sandbox down, keep the status."""
        if self.ip is not None:
            self._stop_processes()
            sandboxes.destroy_sandbox(self.context, self.uid)
        self.done = True

    def _stop_processes(self) -> None:
        for process in self.processes.values():
            signal_container(process, signal.SIGKILL)
            process.wait()
        for prober in self.probers.values():
            prober.stop()
        self.processes.clear()

    def _terminate(self) -> None:
        """SIGTERM now, SIGKILL after the grace period, then remove the sandbox and the pod."""
        if self.kill_deadline is None:
            meta = self.pod["metadata"]
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
            self.kill_deadline = time.monotonic() + grace
            for process in self.processes.values():
                signal_container(process, signal.SIGTERM)
        for name, process in list(self.processes.items()):
            if process.poll() is not None:
                kill_group(process.pid, signal.SIGKILL)  # its group's stragglers, once
                del self.processes[name]
        if self.processes and time.monotonic() < self.kill_deadline:
            return
        self.shut_down()
        self.context.kube.delete_pod_now(self.namespace, self.name, self.uid)
        self.gone = True

    def shut_down(self) -> None:
        """Kill every process of the pod and remove its sandbox (the API object stays)."""
        self._stop_processes()
        if self.ip is not None or self.context.state.pod_dir(self.uid).exists():
            sandboxes.destroy_sandbox(self.context, self.uid)
        self.done = True

    def send_term(self) -> None:
        """SIGTERM every running container (the agent is stopping)."""
        for process in self.processes.values():
            signal_container(process, signal.SIGTERM)

    def has_processes(self) -> bool:
        """A container's main process still runs."""
        return any(process.poll() is None for process in self.processes.values())

    def _reject(self, reason: str, message: str) -> None:
        status = build_rejection(self.pod, self.context.host_ip, reason, message)
        self._write_status(status)
        self.done = True

    def _report(self) -> None:
        previous = self.pod.get("status", {}).get("conditions") or []
        report = PodReport(
            list(self.runs.values()), self.ip, self.context.host_ip, self.start_time,
            message=self.message, previous_conditions=previous,
        )  # fmt: skip
        status = build_pod_status(report, now_rfc3339())
        comparable = {k: v for k, v in status.items() if k != "conditions"}
        ready = [(c["type"], c["status"]) for c in status["conditions"]]
        if (comparable, ready) != self.last_status:
            self.last_status = (comparable, ready)
            self._write_status(status)

    def _write_status(self, status: dict[str, Any]) -> None:
        try:
            self.context.kube.patch_pod_status(self.namespace, self.name, status)
        except Exception as error:
            if not is_status(error, 404):
                log.warning("status of %s/%s not written: %s", self.namespace, self.name, error)
                self.last_status = None
