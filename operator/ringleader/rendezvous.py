"""The rendezvous pod's program (a torch.distributed TCPStore server, run in the workers' image)
and the name the agents meet it at.

Every worker's elastic agent meets the others at this store (c10d rendezvous, is_host=false),
so it lives in a pod of its own: losing any worker, rank 0 included, does not lose it. The
program is handed to `python3 -c`, so the workers' image needs python3 and torch and nothing of
Ringleader: a user's own image runs it as well as the trainer image does.
"""

from __future__ import annotations

from typing import Final

from ringleader import naming
from ringleader.constants import RENDEZVOUS_PORT
from ringleader.models import DistributedTrainingJob

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


def endpoint(job: DistributedTrainingJob) -> str:
    """Where the job's agents meet (PET_RDZV_ENDPOINT); status.rendezvousEndpoint once recorded.

    A new job's rendezvous pod is a host in the workers' subdomain, so their one headless
    Service names it. A job an older operator started (a status with a phase but no endpoint)
    keeps the Service of its own the rendezvous had then: its running workers were given that
    name, and a replacement must meet them at the same one.
    """
    status, name = job.status, job.metadata.name
    if status is not None and status.rendezvous_endpoint:
        return status.rendezvous_endpoint
    namespace = job.metadata.namespace or "default"
    older = status is not None and status.phase is not None
    address = naming.rendezvous_service_address if older else naming.rendezvous_address
    return f"{address(name, namespace)}:{RENDEZVOUS_PORT}"


def has_own_service(job: DistributedTrainingJob) -> bool:
    """Whether the job's rendezvous is reached through a Service of its own (an older job)."""
    namespace = job.metadata.namespace or "default"
    own = naming.rendezvous_service_address(job.metadata.name, namespace)
    return endpoint(job) == f"{own}:{RENDEZVOUS_PORT}"
