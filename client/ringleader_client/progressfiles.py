"""Where the progress reports live: files on the job's shared checkpoint volume.

Global rank 0 writes `progress.json`; each pod's local rank 0 writes `heartbeats/<pod>.json`.
Writers replace a file whole (write then rename), so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"
HEARTBEAT_DIR = "heartbeats"


def write_json_atomic(path: Path, body: dict[str, Any]) -> None:
    """Write JSON so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(body, sort_keys=True))
    os.replace(temp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """Return a JSON file's object, or None when it is absent or unreadable."""
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def heartbeat_path(root: Path, pod_name: str) -> Path:
    """Return where a pod's heartbeat lives."""
    return root / HEARTBEAT_DIR / f"{pod_name}.json"


class Throttle:
    """Says yes at most once per interval (always when the interval is 0)."""

    def __init__(self, interval: float) -> None:
        self.interval, self._last = interval, float("-inf")

    def ready(self) -> bool:
        """Return True, and restart the interval, when it has elapsed."""
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True

    def seconds_left(self) -> float:
        """Seconds until it says yes again."""
        return max(self._last + self.interval - time.monotonic(), 0.0)
