"""The Checkpointer in a gloo group of one: a save in flight and the loop's own collectives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from ringleader_client.resume import rotation
from ringleader_client.resume.checkpoint import Checkpointer


@pytest.fixture
def group(tmp_path: Path) -> Iterator[dist.ProcessGroup]:
    """A gloo group of one in this process."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield dist.group.WORLD  # type: ignore[misc]
    dist.destroy_process_group()


class SlowCheckpointer(Checkpointer):
    """Writes slowly and records when each write and each gather ran."""

    def __init__(self, root: Path, group: dist.ProcessGroup) -> None:
        super().__init__(root, 2, group)
        self.events: list[str] = []
        self.writing = threading.Event()

    def _write(self, step: int, staged: dict[str, Any]) -> None:
        self.writing.set()
        self.events.append(f"write {step} starts")
        time.sleep(0.3)  # long enough that the gather below would overlap it
        super()._write(step, staged)
        self.events.append(f"write {step} ends")

    def gather(self, value: Any) -> list[Any]:
        values = super().gather(value)
        self.events.append("gather")
        return values


def test_a_gather_waits_for_the_save_in_flight_on_the_same_group(
    group: dist.ProcessGroup, tmp_path: Path
) -> None:
    ckpt = SlowCheckpointer(tmp_path / "ckpt", group)
    ckpt.save(7, {"w": torch.arange(4.0)}, block=False)
    assert ckpt.writing.wait(10), "the background write never started"
    assert ckpt.gather({"rank": 0}) == [{"rank": 0}]
    assert ckpt.events == ["write 7 starts", "write 7 ends", "gather"]
    ckpt.close()
    assert [step for step, _ in rotation.list_committed(tmp_path / "ckpt")] == [7]
