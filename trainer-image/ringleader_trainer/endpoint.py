"""The launcher's HTTP endpoint: the progress files (progressfiles.py) served to the operator.

Workers need no cluster credentials: the operator polls GET /progress and /heartbeats (and
Prometheus scrapes GET /metrics) on the launcher, which outlives worker restarts and reads the
files the workers write.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ringleader_trainer import contract
from ringleader_trainer.progressfiles import HEARTBEAT_DIR, PROGRESS_FILE, heartbeat_path, read_json


class ProgressCollector(Collector):
    """Prometheus collector reading progress and this pod's heartbeat at scrape time."""

    def __init__(self, root: Path, pod_name: str) -> None:
        self.root, self.pod_name = root, pod_name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield gauges for the job's progress and this pod's heartbeat."""
        progress = read_json(self.root / PROGRESS_FILE) or {}
        ckpt = progress.get("checkpoint") or {}
        beat = read_json(heartbeat_path(self.root, self.pod_name)) or {}
        gauges = [
            ("ringleader_trainer_step", "Optimizer steps completed", progress.get("step")),
            ("ringleader_trainer_epoch", "Current epoch", progress.get("epoch")),
            ("ringleader_trainer_loss", "Loss of the last reported step", progress.get("loss")),
            (
                "ringleader_trainer_samples_per_second",
                "Global throughput",
                progress.get("samples_per_second"),
            ),
            ("ringleader_trainer_world_size", "Processes in the group", progress.get("world_size")),
            (
                "ringleader_trainer_progress_updated_timestamp_seconds",
                "When progress was written",
                progress.get("updated_at"),
            ),
            (
                "ringleader_trainer_checkpoint_step",
                "Step of the newest committed checkpoint",
                ckpt.get("step"),
            ),
            (
                "ringleader_trainer_checkpoint_timestamp_seconds",
                "When it was committed",
                ckpt.get("time"),
            ),
            (
                "ringleader_trainer_heartbeat_step",
                "This pod's last completed step",
                beat.get("step"),
            ),
            (
                "ringleader_trainer_heartbeat_timestamp_seconds",
                "When this pod last completed a step",
                beat.get("time"),
            ),
        ]
        for name, doc, value in gauges:
            if isinstance(value, int | float):
                yield GaugeMetricFamily(name, doc, value=float(value))


def make_handler(root: Path, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class serving /progress, /heartbeats and /metrics."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(registry), "text/plain; version=0.0.4")
            elif self.path == contract.HEARTBEATS_PATH:
                beats = {
                    path.stem: read_json(path) for path in (root / HEARTBEAT_DIR).glob("*.json")
                }
                self._reply(200, json.dumps(beats).encode(), "application/json")
            elif self.path == contract.PROGRESS_PATH:
                body = read_json(root / PROGRESS_FILE)
                if body is None:
                    self._reply(404, b'{"error": "no progress yet"}\n', "application/json")
                else:
                    self._reply(200, json.dumps(body).encode(), "application/json")
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
    """Start serving progress and metrics on port in a daemon thread; return the server."""
    registry = CollectorRegistry()
    registry.register(ProgressCollector(root, pod_name))
    server = ThreadingHTTPServer(("0.0.0.0", port), make_handler(root, registry))
    threading.Thread(target=server.serve_forever, name="ringleader-progress", daemon=True).start()
    return server
