"""torch's elastic agent, configured from the env contract (started by ringleader_trainer.launch).

The agent starts PET_NPROC_PER_NODE workers (ringleader_trainer.worker with the same options,
forked from a preloaded server: see ringleader_trainer.forkserver), restarts them in place up to
PET_MAX_RESTARTS times, and re-forms the group through the c10d rendezvous store at
PET_RDZV_ENDPOINT when pods come and go. This process also serves
/progress and /metrics on RINGLEADER_PROGRESS_PORT, since it outlives its workers' restarts.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch
from torch.distributed import DistStoreError
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous.api import RendezvousError
from torch.distributed.elastic.rendezvous.utils import _parse_rendezvous_config
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from ringleader_client import contract, termination
from ringleader_client.contract import TrainerState
from ringleader_client.endpoint import serve_progress
from ringleader_client.progressfiles import heartbeat_path, read_json
from ringleader_client.stopping import PEER_LOST_FILE
from ringleader_trainer import peerwatch
from ringleader_trainer.forkserver import run_worker
from ringleader_trainer.verdict import (
    AgentEnd,
    WorkerDeath,
    failure_verdict,
    judge,
    read_failure_message,
)

log = logging.getLogger("ringleader.agent")


KEEP_ALIVE_FAST_UP_TO = 64  # pods; more than this and the heartbeats go back to torch's pace
LAST_CALL_SECONDS = 3


def resolve_nproc(value: str) -> int:
    """Return processes per pod: a number, or auto = one per visible GPU (else one)."""
    if value in ("auto", "gpu"):
        return max(1, torch.cuda.device_count())
    return int(value)


def build_launch_config(env: contract.LaunchEnv) -> LaunchConfig:
    """Translate the env contract into the elastic agent's configuration."""
    conf: dict[str, object] = dict(_parse_rendezvous_config(env.rdzv_conf))
    conf.setdefault("is_host", "false")  # the store lives in the rendezvous pod, never here
    # A pod that died without leaving the rendezvous blocks the next round until its keep-alive
    # expires: torch's default (every 5 s, 3 missed) costs 15 s on every in-place recovery.
    # Every agent writes its heartbeat to the store each interval, so large groups beat slower.
    conf.setdefault("keep_alive_interval", 1 if env.max_nodes <= KEEP_ALIVE_FAST_UP_TO else 5)
    conf.setdefault("keep_alive_max_attempt", 3)
    # Once min nodes have joined, wait this long for more: torch's 30 s would hold up every
    # elastic resize; a pod a little late joins the next round (it waits, the group re-forms).
    conf.setdefault("last_call_timeout", LAST_CALL_SECONDS)
    backend = peerwatch.register() if env.rdzv_backend == "c10d" else env.rdzv_backend
    return LaunchConfig(
        min_nodes=env.min_nodes,
        max_nodes=env.max_nodes,
        nproc_per_node=resolve_nproc(env.nproc_per_node),
        run_id=env.rdzv_id,
        rdzv_backend=backend,
        rdzv_endpoint=env.rdzv_endpoint,
        rdzv_configs=conf,
        max_restarts=env.max_restarts,
        monitor_interval=0.1,
        start_method="forkserver",  # see ringleader_trainer.forkserver
    )


def run_agent(env: contract.LaunchEnv, argv: list[str]) -> AgentEnd:
    """Run the workers under the elastic agent until they finish, fail or are stopped."""
    config = build_launch_config(env)
    try:
        elastic_launch(config, entrypoint=run_worker)(argv)
    except ChildFailedError as exc:
        log.error("ringleader: workers failed after %d restarts: %s", env.max_restarts, exc)
        failures = sorted(exc.failures.values(), key=lambda f: f.timestamp)
        return judge([WorkerDeath(f.exitcode, read_failure_message(f.message)) for f in failures])
    except SignalException as exc:
        return AgentEnd(exit_code_after_signal(env, exc.sigval))
    except RendezvousError as exc:
        # The rendezvous pod was deleted or crashed: no fault of the training code.
        message = f"lost the rendezvous store at {env.rdzv_endpoint}: {type(exc).__name__}"
        log.error("ringleader: %s: %s", message, exc)
        return AgentEnd(1, failure_verdict(contract.COMMUNICATION, message))
    except DistStoreError as exc:
        # A round that never completed: a member left between joining and taking its rank
        # (a pod deleted or lost meanwhile). The pod is replaced; the others re-form.
        message = f"the rendezvous round did not complete: {exc}"
        log.error("ringleader: %s", message)
        return AgentEnd(1, failure_verdict(contract.COMMUNICATION, message[:300]))
    finally:
        peerwatch.stop_heartbeats()  # before the interpreter exits: see its docstring
    peerwatch.close_rendezvous()
    return AgentEnd(0)


def exit_code_after_signal(env: contract.LaunchEnv, sigval: int) -> int:
    """Exit 0 after a SIGTERM when this pod's workers stopped cleanly with a checkpoint."""
    beat = read_json(heartbeat_path(Path(env.checkpoint_dir), env.pod_name)) or {}
    if beat.get(contract.STATE) == TrainerState.STOPPED_HERE:
        print(
            f"ringleader: pod {env.pod_name} stopped on signal {sigval} after checkpointing "
            f"step {beat.get('step')}",
            flush=True,
        )
        return 0
    return 128 + int(sigval)


def main(argv: list[str]) -> int:
    """Serve progress, then run the agent until the workers finish, fail or are stopped."""
    # Timestamps: the agent's log is where a slow restart or re-formed group is explained.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    env = contract.read_launch_env()
    if env.progress_port:
        try:
            serve_progress(Path(env.checkpoint_dir), env.pod_name, env.progress_port)
        except OSError as exc:  # training matters more than its reporting channel
            log.warning("ringleader: cannot serve progress on %d: %s", env.progress_port, exc)
    end = run_agent(env, argv)
    if end.failure:  # what the operator will read in the termination message
        log.error("ringleader: pod fails with exit code %d: %s", end.code, json.dumps(end.failure))
    termination.write_termination_message(Path(env.checkpoint_dir), end.failure)
    Path(os.environ[PEER_LOST_FILE]).unlink(missing_ok=True)
    return end.code
