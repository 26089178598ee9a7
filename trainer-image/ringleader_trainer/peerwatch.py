"""The c10d rendezvous, plus a watch for members of the current round that died.

torch's elastic agent re-forms its group when a node is *waiting* to join, or when one of its
own workers fails. A peer pod that dies without a word (SIGKILL, a lost node, a netns torn down:
no TCP reset reaches the survivors) is neither: the survivors' workers wait in their all-reduce
until the collective timeout, and a replacement cannot join before the dead member's keep-alive
expires. Here the agent's periodic `num_nodes_waiting()` also answers 1 when the current round
has fewer live members than it started with (torch drops a member whose keep-alive expired), so
the survivors re-form at once: at a smaller size (elastic) or ready for the replacement (fixed).

The workers learn that the restart is for a dead peer from a flag file (RINGLEADER_PEER_LOST_FILE,
see stopping.py): they exit at once instead of waiting for a step boundary that cannot come.

Unlike torch's own handler, a failed agent leaves the rendezvous open (see shutdown()).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch.distributed.elastic.rendezvous import (
    RendezvousHandler,
    RendezvousInfo,
    RendezvousParameters,
    rendezvous_handler_registry,
)
from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import create_backend
from torch.distributed.elastic.rendezvous.dynamic_rendezvous import (
    DynamicRendezvousHandler,
    _RendezvousState,
    create_handler,
)

from ringleader_client.stopping import PEER_LOST_FILE

log = logging.getLogger("ringleader.peerwatch")
BACKEND = "ringleader-c10d"
# The handlers this process made (one per agent): see stop_heartbeats().
_handlers: list[PeerWatchingHandler] = []


class PeerWatchingHandler(RendezvousHandler):
    """A DynamicRendezvousHandler whose num_nodes_waiting() also counts a lost member."""

    def __init__(self, inner: DynamicRendezvousHandler, flag: Path | None) -> None:
        self._inner, self._flag = inner, flag
        self._round: int | None = None
        self._members = 0

    def get_backend(self) -> str:
        return BACKEND  # torch's registry checks the handler it made answers to its name

    @property
    def use_agent_store(self) -> bool:
        return self._inner.use_agent_store

    def next_rendezvous(self) -> RendezvousInfo:
        info = self._inner.next_rendezvous()
        self._round, self._members = self._state().round, info.world_size
        if self._flag is not None:
            self._flag.unlink(missing_ok=True)  # the new round's workers start unflagged
        return info

    def is_closed(self) -> bool:
        return self._inner.is_closed()

    def set_closed(self) -> None:
        self._inner.set_closed()

    def num_nodes_waiting(self) -> int:
        waiting = self._inner.num_nodes_waiting()  # syncs the state, dropping expired members
        lost = self._lost_members() if self._round is not None else ""
        if not lost:
            return waiting
        # Flag it even when a node is waiting too (a replacement may join the moment the dead
        # member expires): the workers are stuck with the dead one either way.
        log.warning("ringleader: %s; re-forming the group", lost)
        if self._flag is not None:
            self._flag.touch()
        return max(waiting, 1)

    def _lost_members(self) -> str:
        """Why the current round is broken, or "" while it is whole."""
        state = self._state()
        if state.round != self._round:
            return f"the rendezvous moved on to round {state.round}"
        alive = len(state.participants)
        if alive < self._members:
            return f"{self._members - alive} of {self._members} pods of the group stopped beating"
        return ""

    def _state(self) -> _RendezvousState:
        # torch's private view of the round; torch is pinned to an exact version.
        return self._inner._state_holder.state

    def get_run_id(self) -> str:
        return self._inner.get_run_id()

    def stop_heartbeats(self) -> None:
        """Stop this node's keep-alive thread, leaving the rendezvous open for the others."""
        self._inner._stop_heartbeats()  # torch's private API; torch is pinned to an exact version

    def shutdown(self) -> bool:
        # torch's agent calls this however its run ended (but for a signal), and a closed
        # rendezvous is closed for good: no pod the operator starts in this one's place could
        # ever join the group again. So a pod that fails only stops beating (the others re-form
        # without it); the rendezvous is closed once the workers finished (close_rendezvous).
        self.stop_heartbeats()
        return True

    def close(self) -> None:
        """Close the rendezvous: a pod that joins later learns the run is over."""
        self._inner.shutdown()


def _create(params: RendezvousParameters) -> RendezvousHandler:
    backend, store = create_backend(params)
    flag = os.environ.get(PEER_LOST_FILE)
    inner = create_handler(store, backend, params)
    handler = PeerWatchingHandler(inner, Path(flag) if flag else None)
    _handlers.append(handler)
    return handler


def stop_heartbeats() -> None:
    """Stop the keep-alive threads of every handler this process made.

    On a signal torch leaves the rendezvous open (closing it would end the other pods' group
    too), and so also leaves its keep-alive daemon thread beating. A daemon thread that is inside
    a store call when the interpreter exits cannot take the GIL back and aborts the whole process
    (SIGABRT, "terminate called without an active exception"): a clean stop would end as a crash.
    """
    for handler in _handlers:
        handler.stop_heartbeats()


def close_rendezvous() -> None:
    """The workers finished: close the rendezvous of every handler this process made.

    Only a courtesy to pods that come late: the run succeeded whether or not the store (which
    may already be gone with the finished job) can still be reached."""
    for handler in _handlers:
        try:
            handler.close()
        except Exception as exc:  # nothing here may fail a finished run
            log.warning("ringleader: could not close the rendezvous: %s", exc)


def register() -> str:
    """Make the backend known to torch's registry; return its name for the launch config."""
    rendezvous_handler_registry.register(BACKEND, _create)
    return BACKEND
