"""The launcher's rendezvous handler against the real rendezvous program."""

from __future__ import annotations

import threading

from torch.distributed.elastic.rendezvous import (
    RendezvousParameters,
    rendezvous_handler_registry,
)

from ringleader_trainer import peerwatch


def keep_alive_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("RendezvousKeepAliveTimer")]


def test_stopping_heartbeats_ends_the_keep_alive_thread_and_leaves_the_rendezvous_open(
    rendezvous_port: int,
) -> None:
    params = RendezvousParameters(
        backend=peerwatch.register(),
        endpoint=f"127.0.0.1:{rendezvous_port}",
        run_id="heartbeats",
        min_nodes=1,
        max_nodes=1,
        is_host="false",
        keep_alive_interval=1,
        last_call_timeout=1,
    )
    handler = rendezvous_handler_registry.create_handler(params)
    handler.next_rendezvous()
    assert len(keep_alive_threads()) == 1  # a daemon thread that calls into the store

    # What the launcher does on SIGTERM: a daemon thread inside a store call when the
    # interpreter exits aborts the process, so it must be gone first.
    peerwatch.stop_heartbeats()
    assert keep_alive_threads() == []
    assert not handler.is_closed()  # the other pods' group goes on
