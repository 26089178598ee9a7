"""Whether kopf has paused this replica in favour of a peer (HA: one replica acts at a time).

kopf stops its watches while paused, but the operator's own timers (retries, requeues, the
progress poller) run regardless, and acting on them would act on a cache no watch has fed since
the pause: a stale decision (its status write is refused, see execute_plan; its creations and
deletions are not). kopf exposes no pause state, but announces every change on its peering
logger, and this reads the announcements. A replica in peering mode starts paused and says
nothing of it: kopf announces "Resuming" once it has seen no peer above it.
"""

from __future__ import annotations

import logging

PEERING_LOGGER = "kopf._core.engines.peering"
# kopf's own words (kopf 1.45, pinned; tests/unit/operator/test_peering.py holds them).
PAUSING = ("Pausing operations", "Pausing all operators")
RESUMING = "Resuming operations"


class PauseState(logging.Filter):
    """Follows kopf's peering announcements; `paused` is this replica's state now."""

    def __init__(self, paused: bool) -> None:
        super().__init__()
        self.paused = paused

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(PAUSING):
            self.paused = True
        elif message.startswith(RESUMING):
            self.paused = False
        return True  # a filter that only listens: the record is logged as ever


def follow_pauses(peering: bool) -> PauseState:
    """The pause state of this replica, kept up to date from now on (never paused without
    peering)."""
    state = PauseState(paused=peering)
    logger = logging.getLogger(PEERING_LOGGER)
    if not logger.isEnabledFor(logging.INFO):  # a record never made is never seen
        logger.setLevel(logging.INFO)
    logger.addFilter(state)
    return state
