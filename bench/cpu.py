"""CPU seconds of processes: the operator's, and each control-plane daemon's of a local cluster."""

from __future__ import annotations

import os
from pathlib import Path

from tools.localcluster.cluster import CONTROL_PLANE
from tools.localcluster.layout import Layout
from tools.localcluster.processes import recorded_pid

DAEMONS = (*CONTROL_PLANE, "kwok")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(layout: Layout, operator_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the operator, each daemon of the cluster that runs, and the
    bench itself (its watch parses every event: it shares the machine too)."""
    pids = {name: recorded_pid(layout.run_dir, name) for name in DAEMONS}
    used = {name: cpu_seconds(pid) for name, pid in pids.items() if pid is not None}
    return {"operator": cpu_seconds(operator_pid), **used, "bench": cpu_seconds(os.getpid())}
