"""Checkpoint directory layout, manifests, verification and rotation (no torch.distributed here).

Layout under the checkpoint directory:
  step_000000040/                    a committed checkpoint (DCP files + ringleader-manifest.json)
  .tmp-step_000000045-<nonce>/       being written; never read; removed at the next start
The manifest is written last, inside the temporary directory, and the directory is then renamed:
a checkpoint without a manifest, or whose files differ from it, is not valid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from pathlib import Path

MANIFEST = "ringleader-manifest.json"
_STEP_DIR = re.compile(r"^step_(\d{9})$")


def name_step_dir(step: int) -> str:
    """Return the committed directory name of a step's checkpoint."""
    return f"step_{step:09d}"


def name_temp_dir(step: int, nonce: str) -> str:
    """Return the temporary directory name a checkpoint is written under before commit."""
    return f".tmp-{name_step_dir(step)}-{nonce}"


def list_committed(root: Path) -> list[tuple[int, Path]]:
    """Return committed checkpoints as (step, path), newest first."""
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP_DIR.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found, reverse=True)


def compute_crc32(path: Path) -> int:
    """Return the CRC-32 of a file, read in chunks."""
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def write_manifest(directory: Path, step: int, extra: dict[str, object]) -> None:
    """Record every file's size and CRC-32 in the manifest, durably, as the last write."""
    files = {
        p.name: {"size": p.stat().st_size, "crc32": compute_crc32(p)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    body = json.dumps({"step": step, "files": files, **extra}, indent=1)
    path = directory / MANIFEST
    with path.open("w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())


def find_problem(directory: Path) -> str | None:
    """Return why a committed checkpoint is not valid, or None when every file checks out."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return f"no readable manifest ({exc.__class__.__name__})"
    for name, want in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want["size"]:
            return f"{name} has {path.stat().st_size} bytes, manifest says {want['size']}"
        if compute_crc32(path) != want["crc32"]:
            return f"{name} fails its CRC-32 check"
    return None


def commit_dir(temp: Path, final: Path) -> None:
    """Atomically publish temp as final, replacing a stale final (e.g. one found corrupt)."""
    if final.exists():
        trash = final.with_name(f".trash-{final.name}-{os.getpid()}")
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    temp.rename(final)
    fsync_dir(final.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in directory durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def plan_rotation(steps: list[int], keep: int) -> list[int]:
    """Return the steps to delete so that only the newest `keep` remain."""
    return sorted(steps, reverse=True)[max(keep, 1) :]


def rotate(root: Path, keep: int) -> list[int]:
    """Delete committed checkpoints beyond the newest `keep`; return the deleted steps."""
    committed = dict(list_committed(root))
    doomed = plan_rotation(list(committed), keep)
    for step in doomed:
        shutil.rmtree(committed[step], ignore_errors=True)
    return doomed


def remove_leftovers(root: Path) -> None:
    """Remove temporary and trash directories left by earlier, interrupted, saves."""
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith((".tmp-", ".trash-")) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
