"""SIGTERM handling in a worker: stop at the step boundary, or exit when it never comes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

from ringleader_client.stopping import EXIT_STOP_TIMEOUT, StopRequest

# A stand-in worker: SIGTERM watched; the main thread then "trains" as the argument says.
WORKER = textwrap.dedent(
    """
    import sys, time
    from ringleader_client.stopping import StopRequest
    stop = StopRequest(floor_seconds=1.0)
    stop.watch()
    print("ready", flush=True)
    if sys.argv[1] == "stuck":
        time.sleep(60)  # a collective whose peer is gone: the boundary never comes
    else:
        stop.wait()
        stop.agreed()  # the group agreed to stop; its checkpoint takes a while
        time.sleep(2)
        print("checkpoint committed", flush=True)
    """
)


def start(mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_a_worker_stuck_away_from_a_step_boundary_exits_soon_after_sigterm() -> None:
    proc = start("stuck")
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_STOP_TIMEOUT
    assert time.monotonic() - signalled < 20  # not the 60 s its main thread would have slept
    assert "no step boundary within 1s of SIGTERM" in out
    assert 'File "<string>", line 8' in out  # where the main thread waited: the sleep


def test_a_worker_that_reaches_the_boundary_finishes_its_checkpoint() -> None:
    proc = start("agrees")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "SIGTERM received" in out and "checkpoint committed" in out


def test_the_boundary_gets_a_few_step_times_but_never_less_than_the_floor() -> None:
    stop = StopRequest(floor_seconds=5.0, step_multiple=3.0)
    assert stop.boundary_timeout() == 5.0
    stop.note_step(0.5)
    assert stop.boundary_timeout() == 5.0
    stop.note_step(4.0)
    assert stop.boundary_timeout() == 12.0
