"""Names, labels and selectors of everything a job makes.

Every child's name derives from the job's name (bounded to constants.MAX_JOB_NAME_LENGTH by a CEL
rule). The Services, the rendezvous pod and the claim have deterministic names, so creating one
twice is a harmless 409, never a duplicate. A worker pod's name ends in a random token instead:
each incarnation of a worker has a name of its own, so nothing keyed by name (kwok's delayed
deletes, a cache, a user's tooling) can mistake a replacement for the pod it replaces. The
operator knows a worker by its slot (restart attempt and replica index, in its labels: slots.py)
and other pods find it by its DNS name, which stays stable (host name and subdomain).
"""

from __future__ import annotations

import secrets
from typing import Final

from ringleader import constants as c

# Kubernetes' generateName alphabet: no vowels, so no words by chance, and no 0, 1 or 3, which
# read like o, l and e.
TOKEN_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
TOKEN_LENGTH: Final = 5


def new_token() -> str:
    """Five random characters that make one worker pod's name its own."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def worker_pod_name(job_name: str, index: int, attempt: int, token: str) -> str:
    """Name of one incarnation of worker `index` in restart attempt `attempt`, e.g.
    digits-worker-0-a1-x7k2p (token: new_token(), drawn when its creation is planned)."""
    # The attempt stays in the name so that `kubectl get pods` shows which gang a pod is of.
    return f"{worker_hostname(job_name, index)}-a{attempt}-{token}"


def worker_hostname(job_name: str, index: int) -> str:
    """Stable host name of worker `index`, the same across restart attempts."""
    return f"{job_name}-{c.WORKER_SUFFIX}-{index}"


def worker_address(job_name: str, namespace: str, index: int) -> str:
    """DNS name of worker `index` (MASTER_ADDR names worker 0), stable across its pods."""
    # No cluster domain: resolv.conf's search list completes it, whatever the domain is.
    return f"{worker_hostname(job_name, index)}.{workers_service_name(job_name)}.{namespace}.svc"


def workers_service_name(job_name: str) -> str:
    """Headless Service that gives each worker a DNS name: <hostname>.<this>.<ns>.svc."""
    return f"{job_name}-{c.WORKERS_SERVICE_SUFFIX}"


def rendezvous_name(job_name: str) -> str:
    """Name (and host name) of the rendezvous pod; of its own Service in older jobs."""
    return f"{job_name}-{c.RENDEZVOUS_SUFFIX}"


def rendezvous_address(job_name: str, namespace: str) -> str:
    """DNS name of the rendezvous pod: its host name in the workers' subdomain."""
    # No cluster domain: resolv.conf's search list completes it, whatever the domain is.
    return f"{rendezvous_name(job_name)}.{workers_service_name(job_name)}.{namespace}.svc"


def rendezvous_service_address(job_name: str, namespace: str) -> str:
    """DNS name of the rendezvous in a job an older operator started: a Service of its own."""
    return f"{rendezvous_name(job_name)}.{namespace}.svc"


def job_pods_selector(job_name: str) -> dict[str, str]:
    """Label selector of every pod of a job: the workers and the rendezvous."""
    return {c.LABEL_JOB_NAME: job_name}


def pod_group_name(job_name: str) -> str:
    """The job's PodGroup (spec.scheduling.gang): one per job, named after it."""
    return job_name


def checkpoint_claim_name(job_name: str) -> str:
    """Name of the PersistentVolumeClaim created when spec.checkpoint.size is set."""
    return f"{job_name}-{c.CHECKPOINT_PVC_SUFFIX}"


def job_labels(job_name: str, role: str) -> dict[str, str]:
    """Labels every child of the job carries."""
    return {c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_JOB_NAME: job_name, c.LABEL_ROLE: role}


def worker_selector(job_name: str) -> dict[str, str]:
    """Label selector of all worker pods of a job, of every restart attempt."""
    return {c.LABEL_JOB_NAME: job_name, c.LABEL_ROLE: c.ROLE_WORKER}


def worker_selector_string(job_name: str) -> str:
    """The worker selector as a string: what status.selector holds for the scale subresource."""
    return ",".join(f"{key}={value}" for key, value in sorted(worker_selector(job_name).items()))


def worker_labels(job_name: str, index: int, attempt: int) -> dict[str, str]:
    """Labels of one worker pod."""
    return {
        **job_labels(job_name, c.ROLE_WORKER),
        c.LABEL_REPLICA_INDEX: str(index),
        c.LABEL_RESTART_ATTEMPT: str(attempt),
    }
