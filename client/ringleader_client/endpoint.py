"""The pod's HTTP endpoint: the progress files (progressfiles.py) served to the operator.

Workers need no cluster credentials: the operator polls GET /progress and /heartbeats (and
Prometheus scrapes GET /metrics) on one process per pod (the built-in trainer's launcher, which
outlives worker restarts, or a user script's local rank 0), which reads the files the workers
write. Standard library only: the Prometheus text format is a few lines to write.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ringleader_client import contract
from ringleader_client.progressfiles import HEARTBEAT_DIR, PROGRESS_FILE, heartbeat_path, read_json

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"
MAX_USER_METRICS = 32  # what a script reports beyond step and loss, bounded


def _gauges(progress: dict[str, Any], beat: dict[str, Any]) -> list[tuple[str, str, object]]:
    checkpoint = progress.get(contract.CHECKPOINT) or {}
    return [
        ("ringleader_trainer_step", "Optimizer steps completed", progress.get(contract.STEP)),
        ("ringleader_trainer_epoch", "Current epoch", progress.get(contract.EPOCH)),
        ("ringleader_trainer_loss", "Loss of the last reported step", progress.get(contract.LOSS)),
        (
            "ringleader_trainer_samples_per_second",
            "Global throughput",
            progress.get(contract.SAMPLES_PER_SECOND),
        ),
        (
            "ringleader_trainer_world_size",
            "Processes in the group",
            progress.get(contract.WORLD_SIZE),
        ),
        (
            "ringleader_trainer_progress_updated_timestamp_seconds",
            "When progress was written",
            progress.get(contract.UPDATED_AT),
        ),
        (
            "ringleader_trainer_checkpoint_step",
            "Step of the newest committed checkpoint",
            checkpoint.get("step"),
        ),
        (
            "ringleader_trainer_checkpoint_timestamp_seconds",
            "When it was committed",
            checkpoint.get("time"),
        ),
        ("ringleader_trainer_heartbeat_step", "This pod's last completed step", beat.get("step")),
        (
            "ringleader_trainer_heartbeat_timestamp_seconds",
            "When this pod last completed a step",
            beat.get("time"),
        ),
    ]


def _number(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(float(value)) else None  # type: ignore[arg-type]


def render_metrics(root: Path, pod_name: str) -> str:
    """The job's progress and this pod's heartbeat in the Prometheus text format."""
    progress = read_json(root / PROGRESS_FILE) or {}
    beat = read_json(heartbeat_path(root, pod_name)) or {}
    lines = []
    for name, doc, value in _gauges(progress, beat):
        number = _number(value)
        if number is not None:
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name} {number!r}"]
    lines += _rank_lines(beat.get(contract.RANKS))
    user = progress.get(contract.METRICS) or {}
    values = [(k, _number(v)) for k, v in sorted(user.items())[:MAX_USER_METRICS]]
    values = [(k, v) for k, v in values if v is not None]
    if values:
        name = "ringleader_trainer_metric"
        lines += [f"# HELP {name} What the training script reported", f"# TYPE {name} gauge"]
        lines += [f'{name}{{name="{_label(k)}"}} {v!r}' for k, v in values]
    return "\n".join(lines) + "\n"


STEP_PART_SECONDS = "ringleader_trainer_rank_step_seconds"
RANK_GAUGES = {
    STEP_PART_SECONDS: "Seconds per step of each rank of this pod, by part (data: waiting for "
    "its batch; compute; communication: waiting on the group)",
    "ringleader_trainer_rank_samples_per_second": "Samples per second each rank of this pod "
    "trained",
    "ringleader_trainer_rank_memory_peak_bytes": "Memory high-water mark of each rank of this "
    "pod (GPU memory allocated, else the process's peak RSS)",
}
STEP_PARTS = {
    "data": contract.DATA_SECONDS,
    "compute": contract.COMPUTE_SECONDS,
    "communication": contract.COMMUNICATION_SECONDS,
}


def _rank_samples(figures: dict[str, Any]) -> list[tuple[str, str, float | None]]:
    """(gauge, labels, value) of one rank's figures."""
    rank = f'rank="{int(figures[contract.RANK_INDEX])}"'
    out = [
        (STEP_PART_SECONDS, f'{rank},part="{part}"', _number(figures.get(key)))
        for part, key in STEP_PARTS.items()
    ]
    samples = _number(figures.get(contract.SAMPLES_PER_SECOND))
    memory = _number(figures.get(contract.MEMORY_PEAK_BYTES))
    out.append(("ringleader_trainer_rank_samples_per_second", rank, samples))
    out.append(("ringleader_trainer_rank_memory_peak_bytes", rank, memory))
    return out


def _rank_lines(ranks: Any) -> list[str]:
    """Per-rank gauges from this pod's heartbeat: its ranks' figures over the last steps."""
    series: dict[str, list[str]] = {name: [] for name in RANK_GAUGES}
    for figures in ranks if isinstance(ranks, list) else []:
        if isinstance(figures, dict) and _number(figures.get(contract.RANK_INDEX)) is not None:
            for name, labels, value in _rank_samples(figures):
                if value is not None:
                    series[name].append(f"{name}{{{labels}}} {value!r}")
    lines: list[str] = []
    for name, doc in RANK_GAUGES.items():
        if series[name]:
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", *series[name]]
    return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def make_handler(root: Path, pod_name: str) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class serving /progress, /heartbeats and /metrics."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body = render_metrics(root, pod_name).encode()
                self._reply(200, body, METRICS_CONTENT_TYPE)
            elif self.path == contract.HEARTBEATS_PATH:
                beats = {
                    path.stem: read_json(path) for path in (root / HEARTBEAT_DIR).glob("*.json")
                }
                self._reply(200, json.dumps(beats).encode(), "application/json")
            elif self.path == contract.PROGRESS_PATH:
                progress = read_json(root / PROGRESS_FILE)
                if progress is None:
                    not_yet = json.dumps({contract.NOT_YET_KEY: contract.NOT_YET}).encode()
                    self._reply(404, not_yet, "application/json")
                else:
                    self._reply(200, json.dumps(progress).encode(), "application/json")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the operator polls often; access logs would drown the trainer's own

    return Handler


def serve_progress(root: Path, pod_name: str, port: int) -> ThreadingHTTPServer:
    """Start serving progress and metrics on port in a daemon thread; return the server.
    OSError when the port is taken (another process of the pod serves it already)."""
    server = ThreadingHTTPServer(("0.0.0.0", port), make_handler(root, pod_name))
    threading.Thread(target=server.serve_forever, name="ringleader-progress", daemon=True).start()
    return server
