"""The rendezvous pod's program: a torch.distributed TCPStore server, run in the workers' image.

Every worker's elastic agent meets the others at this store (c10d rendezvous, is_host=false),
so it lives in a pod of its own: losing any worker, rank 0 included, does not lose it. The
program is handed to `python3 -c`, so the workers' image needs python3 and torch and nothing of
Ringleader: a user's own image runs it as well as the trainer image does.
"""

from __future__ import annotations

from typing import Final

# wait_for_workers=False: agents come and go, the store must never wait for a fixed count.
# The 24 h timeout only bounds a client's blocking get; the server itself runs until SIGTERM.
SERVER: Final = """\
import datetime, signal, sys, threading
from torch.distributed import TCPStore
stop = threading.Event()
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: stop.set())
store = TCPStore("0.0.0.0", int(sys.argv[1]), is_master=True, wait_for_workers=False,
                 timeout=datetime.timedelta(hours=24), use_libuv=True)
print(f"ringleader: rendezvous store listening on port {store.port}", flush=True)
stop.wait()
print("ringleader: rendezvous store stopping on SIGTERM", flush=True)
"""


def build_command(port: int) -> list[str]:
    """The rendezvous container's command: the server on `port`."""
    return ["python3", "-c", SERVER, str(port)]
