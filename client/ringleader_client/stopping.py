"""SIGTERM → checkpoint at the next step boundary, or exit at once if that boundary never comes.

(The built-in trainer uses all of this; a user's script asks stop_requested() between steps.)

A worker gets SIGTERM when its pod is deleted and when its elastic agent restarts the group
(a pod left or joined). Normally the whole group agrees at the next step boundary to stop and
checkpoints. But when a peer is already dead (killed, its node lost) the step's all-reduce never
returns, and a Python signal handler never runs while the main thread waits in C++: the agent
would wait 30 s and then SIGKILL. So SIGTERM is received by a thread of its own (sigwait), which
gives the loop a few step times to reach the boundary and otherwise ends the process.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading

EXIT_STOP_TIMEOUT = 128 + signal.SIGTERM  # as if SIGTERM had killed it: no checkpoint was taken
# Set by the launcher: a file its agent creates before it stops the workers because a member of
# the group died (peerwatch.py). Then no step boundary can come, and waiting for one is waste.
PEER_LOST_FILE = "RINGLEADER_PEER_LOST_FILE"


class StopRequest:
    """Whether, and since when, this worker has been asked to stop."""

    def __init__(self, floor_seconds: float = 5.0, step_multiple: float = 3.0) -> None:
        self.floor_seconds, self.step_multiple = floor_seconds, step_multiple
        self._requested = threading.Event()
        self._agreed = threading.Event()
        self._step_seconds = 0.0

    def is_set(self) -> bool:
        """True once SIGTERM has arrived."""
        return self._requested.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until SIGTERM arrives (or timeout); return whether it did."""
        return self._requested.wait(timeout)

    def request(self) -> None:
        """What SIGTERM does: ask the loop to stop at its next step boundary."""
        self._requested.set()

    def note_step(self, seconds: float) -> None:
        """The loop's latest step time, which sets how long the boundary may take to come."""
        self._step_seconds = seconds

    def agreed(self) -> None:
        """The group agreed to stop: every peer is alive, the checkpoint that follows will end."""
        self._agreed.set()

    def boundary_timeout(self) -> float:
        """Seconds the loop gets, from SIGTERM, to reach the step boundary."""
        flag = os.environ.get(PEER_LOST_FILE)
        if flag and os.path.exists(flag):
            return 0.0  # a peer is gone: the group cannot agree on anything any more
        return max(self.floor_seconds, self.step_multiple * self._step_seconds)

    def handle_sigterm(self) -> None:
        """Be set by SIGTERM through a plain Python signal handler: what a user's script gets
        from ringleader_client.stop_requested() (it checks between steps). Main thread only."""
        signal.signal(signal.SIGTERM, lambda *_: self.request())

    def watch(self) -> None:
        """Block SIGTERM in this (main) thread and every thread it starts later; a watcher
        thread receives it instead. Call before any other thread is started."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=self._receive, name="sigterm-watcher", daemon=True).start()

    def _receive(self) -> None:
        signal.sigwait({signal.SIGTERM})
        print(
            f"ringleader: SIGTERM received (pid {os.getpid()}); stopping at the next step",
            flush=True,
        )
        self.request()
        self.enforce()

    def enforce(self) -> None:
        """After a request: give the loop boundary_timeout() to agree, else end the process."""
        timeout = self.boundary_timeout()
        if self._agreed.wait(timeout):
            return
        why = "a peer of the group is gone" if timeout == 0 else "a peer is gone?"
        print(
            f"ringleader: no step boundary within {timeout:.0f}s of SIGTERM ({why}); "
            f"exiting without a checkpoint. Where each thread waited:",
            flush=True,
        )
        faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
        sys.stdout.flush()
        os._exit(EXIT_STOP_TIMEOUT)
