"""The controller's queue of jobs: each once, one pass of a job at a time, slots to fill first."""

from __future__ import annotations

import asyncio
from typing import cast

from ringleader.controller import Controller
from ringleader.kube import KubeApi
from ringleader.workqueue import JobQueue

A, B, C = ("team-a", "a"), ("team-a", "b"), ("team-a", "c")


def take(queue: JobQueue, n: int) -> list[tuple[str, str]]:
    """The next n keys, each marked done as soon as taken."""

    async def taking() -> list[tuple[str, str]]:
        keys = []
        for _ in range(n):
            key = await asyncio.wait_for(queue.get(), timeout=1)
            queue.done(key)
            keys.append(key)
        return keys

    return asyncio.run(taking())


def test_a_job_enqueued_many_times_is_reconciled_once() -> None:
    controller = Controller(cast(KubeApi, None))
    for _ in range(5):
        controller.enqueue(A)
    assert len(controller.queue) == 1
    assert take(controller.queue, 1) == [A]
    assert len(controller.queue) == 0


def test_a_job_enqueued_while_being_reconciled_runs_again_once_its_pass_is_over() -> None:
    queue = JobQueue()
    queue.add(A)

    async def scenario() -> list[tuple[str, str]]:
        key = await queue.get()
        queue.add(A)
        queue.add(A, urgent=True)
        assert len(queue) == 0  # never two passes of one job at once
        queue.add(B)
        queue.done(key)
        return [await queue.get(), await queue.get()]

    assert asyncio.run(scenario()) == [A, B]  # asked for urgently meanwhile: ahead of B


def test_jobs_with_a_slot_to_fill_go_ahead_in_the_order_they_came() -> None:
    queue = JobQueue()
    queue.add(A)
    queue.add(B, urgent=True)
    queue.add(C)
    queue.add(C, urgent=True)  # queued already: moves ahead, and is taken once
    queue.add(A)
    assert take(queue, 3) == [B, C, A]
    assert len(queue) == 0


def test_a_key_queued_again_after_it_moved_ahead_is_taken_once_more() -> None:
    queue = JobQueue()
    queue.add(A)
    queue.add(B)
    queue.add(A, urgent=True)
    assert take(queue, 1) == [A]
    queue.add(A)
    # Its old place in line, ahead of B, serves it (sooner than its turn, never twice).
    assert take(queue, 2) == [A, B]
    assert len(queue) == 0
    queue.add(C)
    assert take(queue, 1) == [C]


def test_a_worker_waiting_for_a_key_wakes_when_one_is_added() -> None:
    queue = JobQueue()

    async def scenario() -> tuple[str, str]:
        waiting = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.add(C)
        return await asyncio.wait_for(waiting, timeout=1)

    assert asyncio.run(scenario()) == C
