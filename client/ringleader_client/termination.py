"""A container's last words: the last progress document, and the failure's class when it is
known, left where Kubernetes keeps them (the termination message) for the operator to read after
the pod is gone: the /progress endpoint dies with the pod, so the final step and checkpoint would
otherwise never reach the job's status."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ringleader_client import contract
from ringleader_client.progressfiles import PROGRESS_FILE, read_json

# Where Kubernetes collects a container's last words (the default terminationMessagePath).
TERMINATION_LOG = Path("/dev/termination-log")
TERMINATION_MESSAGE_LIMIT = 4096  # bytes the kubelet keeps
TERMINATION_KEYS = (
    contract.STEP,
    contract.EPOCH,
    contract.LOSS,
    contract.SAMPLES_PER_SECOND,
    contract.WORLD_SIZE,  # the size that trained last: without it, status would lose it
    contract.UPDATED_AT,
    contract.CHECKPOINT,
)


def write_termination_message(
    root: Path, failure: dict[str, str] | None = None, target: Path = TERMINATION_LOG
) -> None:
    """Leave the last progress report, and the failure's class when it is known, as the
    termination message (nothing where Kubernetes provides no file)."""
    progress = read_json(root / PROGRESS_FILE) or {}
    if not (progress or failure) or not target.exists():
        return
    keep = {**{k: progress[k] for k in TERMINATION_KEYS if k in progress}, **(failure or {})}
    text = json.dumps(keep, sort_keys=True, separators=(",", ":"))
    if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
        with contextlib.suppress(OSError):
            target.write_text(text)
