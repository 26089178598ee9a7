"""One training process, started by the elastic agent (forked: see ringleader_trainer.forkserver).

Exit codes: 0 when training finished; 75 (EX_TEMPFAIL) when the group stopped at a step
boundary with its checkpoint committed, on this worker's SIGTERM or another's. On its own
SIGTERM the agent is stopping it: a worker that exited 0 there would wait for the agent to read
its return value, which it never does while stopping (30 s, then SIGKILL). Otherwise the agent
restarts it into the group that re-forms. (The pod's own exit code on SIGTERM comes from the
launcher, which reads this worker's last heartbeat.)
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ringleader_client import contract
from ringleader_client.resume import data
from ringleader_client.stopping import StopRequest
from ringleader_trainer import parallel
from ringleader_trainer.feeder import BatchFeeder
from ringleader_trainer.loop import Outcome, Parts, Runtime, build_schedule, train
from ringleader_trainer.options import Options, parse_options
from ringleader_trainer.verdict import EXIT_REJOIN
from ringleader_trainer.workloads import parse_options as parse_workload_options
from ringleader_trainer.workloads import resolve_workload


def init_runtime() -> Runtime:
    """Join the process group the agent prepared (env://) and describe this worker."""
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get(contract.AGENT_LOCAL_RANK, "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=10))
    # Checkpoints run their collectives in a background thread: they need a group of their own.
    ckpt_group = dist.new_group(backend="gloo")
    launch = contract.read_launch_env()
    assert ckpt_group is not None
    print(
        f"ringleader: rank {dist.get_rank()} of {dist.get_world_size()} joined "
        f"(backend {dist.get_backend()}, pod {launch.pod_name})",
        flush=True,
    )
    return Runtime(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=torch.device("cuda", local_rank) if cuda else torch.device("cpu"),
        ckpt_group=ckpt_group,
        root=Path(launch.checkpoint_dir),
        keep=launch.checkpoint_keep,
        pod_name=launch.pod_name,
        job_name=launch.job_name,
        local_world_size=int(os.environ.get(contract.AGENT_LOCAL_WORLD_SIZE, "1")),
    )


def build_parts(opts: Options, rt: Runtime) -> Parts:
    """Build the workload, the model (DDP-wrapped or FSDP-sharded), optimizer and schedule,
    seeded identically."""
    torch.manual_seed(opts.seed)
    workload = resolve_workload(opts.workload)(parse_workload_options(opts.workload_options))
    model = workload.model.to(rt.device)
    wrapped = parallel.wrap_model(model, opts, rt, workload.sharding_units)
    describe_parallelism(wrapped, rt)
    # After sharding: FSDP replaced the parameters with shards, and the optimizer keeps those.
    if workload.optimizer is not None:
        optim = workload.optimizer(list(model.parameters()))
    else:
        optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    total = opts.epochs * data.compute_steps_per_epoch(workload.num_samples, opts.global_batch)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, build_schedule(total, opts.warmup_steps))
    feeder = BatchFeeder(workload, rt.device)
    return Parts(
        model=model, wrapped=wrapped, optim=optim, sched=sched, workload=workload, feeder=feeder
    )


def describe_parallelism(wrapped: torch.nn.Module, rt: Runtime) -> None:
    """Say on rank 0 how the model is spread (tests and users read it in the pod's log)."""
    if rt.rank != 0:
        return
    if not parallel.is_sharded(wrapped):
        print(f"ringleader: DDP over {rt.world_size} ranks", flush=True)
        return
    param = next(wrapped.parameters())
    mesh = param.device_mesh  # type: ignore[attr-defined]  # a DTensor once sharded
    names = ", ".join(mesh.mesh_dim_names or ())
    print(f"ringleader: FSDP over a mesh of {tuple(mesh.shape)} ({names})", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Train until done or stopped; return the exit code."""
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # SIGUSR1 prints every thread's stack: what a hung worker is waiting on, without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    stop = StopRequest()
    stop.watch()  # before init starts gloo's threads, so that they inherit the blocked SIGTERM
    rt = init_runtime()
    parts = build_parts(opts, rt)
    outcome = train(parts, opts, rt, stop)
    dist.destroy_process_group()
    if outcome is Outcome.STOPPED_HERE:
        print("ringleader: stopped on SIGTERM; checkpoint committed; exiting", flush=True)
        return EXIT_REJOIN
    if outcome is Outcome.STOPPED_ELSEWHERE:
        print("ringleader: group stopping for a leaving worker; exiting to rejoin", flush=True)
        return EXIT_REJOIN
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
