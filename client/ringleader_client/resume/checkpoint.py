"""Checkpoints with torch.distributed.checkpoint: staged async saves, commit by rename, keep K.

A save copies the state into CPU buffers kept from the previous save (the only part the loop
waits for), then a background thread runs dcp.save over a process group of its own, and rank 0
writes the manifest, renames the temporary directory into place and deletes old checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import FileSystemWriter
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.distributed.tensor import DTensor

from ringleader_client.resume import rotation

log = logging.getLogger("ringleader.checkpoint")


class CheckpointError(RuntimeError):
    """A checkpoint save or load failed: on which rank, and why, in one line."""


@contextlib.contextmanager
def explain_failures(what: str) -> Iterator[None]:
    """Turn DCP's CheckpointException into a CheckpointError naming the first failed rank.

    CheckpointException is a BaseException, which torch's elastic error files do not record:
    the launcher would learn only that the worker exited 1, and the operator nothing.
    """
    try:
        yield
    except CheckpointException as exc:
        if not exc.failures:
            raise CheckpointError(f"{what} failed: {exc}") from exc
        rank, (error, _) = min(exc.failures.items())
        raise CheckpointError(
            f"{what} failed on rank {rank}: {type(error).__name__}: {error}"
        ) from exc


@dataclass(frozen=True)
class Committed:
    """A checkpoint that is durably in place: what progress reports as the newest one."""

    step: int
    path: str
    time: float


class Stager:
    """Copies a state dict into CPU buffers that are reused from one save to the next."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}
        self._pin = torch.cuda.is_available()

    def stage(self, state: Any, key: str = "") -> Any:
        """Return a copy of state whose tensors live in this stager's CPU buffers."""
        if isinstance(state, DTensor):
            return self._copy_shard(key, state)
        if isinstance(state, torch.Tensor):
            return self._copy_tensor(key, state)
        if isinstance(state, dict):
            return {k: self.stage(v, f"{key}/{k}") for k, v in state.items()}
        if isinstance(state, list):
            return [self.stage(v, f"{key}/{i}") for i, v in enumerate(state)]
        return copy.deepcopy(state)

    def _copy_tensor(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != tensor.shape or buf.dtype != tensor.dtype:
            buf = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=self._pin)
            self._buffers[key] = buf
        # non_blocking: device-to-pinned copies overlap; synchronised once in stage_all.
        buf.copy_(tensor.detach(), non_blocking=self._pin)
        return buf

    def _copy_shard(self, key: str, tensor: DTensor) -> DTensor:
        """Stage this rank's shard of a sharded (FSDP) tensor; DCP saves it as that shard."""
        local = self._copy_tensor(key, tensor.to_local())
        # DTensor.from_local would move the copy back to the mesh's device (the GPU).
        return DTensor(local, tensor._spec, requires_grad=False)  # type: ignore[no-untyped-call]

    def stage_all(self, state: dict[str, Any]) -> dict[str, Any]:
        """Stage a whole state dict and wait for device copies to land."""
        staged = self.stage(state)
        if self._pin:
            torch.cuda.synchronize()
        return staged  # type: ignore[no-any-return]


class Checkpointer:
    """Saves and loads checkpoints of one process group under a shared directory."""

    def __init__(self, root: Path, keep: int, group: dist.ProcessGroup) -> None:
        self.root, self.keep, self.group = root, keep, group
        self.rank = dist.get_rank(group)
        self.newest: Committed | None = None
        self._stager = Stager()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ringleader-ckpt")
        self._pending: Future[None] | None = None
        self._lock = threading.Lock()
        # One nonce per group incarnation: all ranks write the same temporary directory.
        nonce = [uuid.uuid4().hex[:8] if self.rank == 0 else ""]
        dist.broadcast_object_list(nonce, src=0, group=group)
        self.nonce = str(nonce[0])
        if self.rank == 0:
            root.mkdir(parents=True, exist_ok=True)
            rotation.remove_leftovers(root)
            committed = rotation.list_committed(root)
            if committed:
                step, path = committed[0]
                self.newest = Committed(step, str(path), path.stat().st_mtime)
        dist.barrier(group=group)

    def gather(self, value: Any) -> list[Any]:
        """Return every rank's value, in rank order, once the save in flight has finished.

        That save's thread runs collectives on this same group; two threads issuing them at once
        can pair them differently on each rank, which hangs the group or mixes up the data.
        """
        self.wait()
        values: list[Any] = [None] * dist.get_world_size(self.group)
        dist.all_gather_object(values, value, group=self.group)
        return values

    def save(self, step: int, state: dict[str, Any], *, block: bool) -> float:
        """Save state as step's checkpoint; return the seconds the caller was held."""
        started = time.perf_counter()
        self.wait()
        staged = self._stager.stage_all(state)
        self._pending = self._executor.submit(self._write, step, staged)
        held = time.perf_counter() - started
        if block:
            self.wait()
            dist.barrier(group=self.group)  # rank 0 has committed when every rank returns
        return held

    def wait(self) -> None:
        """Wait for the save in flight, if any; re-raise its error."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _write(self, step: int, staged: dict[str, Any]) -> None:
        temp = self.root / rotation.name_temp_dir(step, self.nonce)
        writer = FileSystemWriter(str(temp), sync_files=True, thread_count=1)
        with explain_failures(f"saving checkpoint step {step}"):
            dcp_save(staged, storage_writer=writer, process_group=self.group)
        if self.rank == 0:
            self._commit(step, temp)

    def _commit(self, step: int, temp: Path) -> None:
        rotation.write_manifest(temp, step, {"time": time.time()})
        final = self.root / rotation.name_step_dir(step)
        rotation.commit_dir(temp, final)
        deleted = rotation.rotate(self.root, self.keep)
        with self._lock:
            self.newest = Committed(step, str(final), time.time())
        log.info(
            "ringleader: checkpoint step %d committed at %s (deleted %s)", step, final, deleted
        )

    def newest_committed(self) -> Committed | None:
        """Return the newest checkpoint this rank committed or found (rank 0 only knows)."""
        with self._lock:
            return self.newest

    def choose_resume_path(self) -> str | None:
        """Agree across ranks on the newest valid checkpoint, skipping bad ones with a warning."""
        choice: list[str | None] = [None]
        if self.rank == 0:
            for step, path in rotation.list_committed(self.root):
                problem = rotation.find_problem(path)
                if problem is None:
                    choice[0] = str(path)
                    break
                log.warning(
                    "ringleader: skipping checkpoint step %d at %s: %s", step, path, problem
                )
        dist.broadcast_object_list(choice, src=0, group=self.group)
        return choice[0]

    def load(self, path: str, state: dict[str, Any]) -> None:
        """Load a checkpoint into state in place (tensors copied, other values replaced)."""
        with explain_failures(f"loading checkpoint {path}"):
            dcp_load(state, checkpoint_id=path, process_group=self.group)

    def close(self) -> None:
        """Finish the save in flight and stop the background thread."""
        self.wait()
        self._executor.shutdown(wait=True)
