"""Command-line options of the trainer: the launcher passes them through to every worker."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """What to train and how; the same on every worker."""

    workload: str
    workload_options: list[str]
    epochs: int
    global_batch: int
    micro_batch: int
    parallel: str
    activation_checkpointing: bool
    hybrid_sharding: bool
    lr: float
    weight_decay: float
    warmup_steps: int
    seed: int
    checkpoint_every: int
    sync_checkpoint: bool
    progress_interval: float
    heartbeat_interval: float
    trace_dir: str | None
    min_step_seconds: float
    debug_stall_at_step: int | None
    debug_slow_rank: int | None
    debug_slow_nodes_file: str | None
    debug_slow_seconds: float


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser shared by the launcher and the worker."""
    p = argparse.ArgumentParser(prog="ringleader_trainer.launch")
    p.add_argument("--workload", default="digits", help="digits, synthetic or module:function")
    p.add_argument(
        "--workload-option",
        dest="workload_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to the workload's builder (repeatable)",
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--global-batch", type=int, default=64, help="samples per optimizer step")
    p.add_argument(
        "--micro-batch",
        type=int,
        default=0,
        help="samples per forward/backward on a rank; 0 = the rank's whole share",
    )
    p.add_argument(
        "--parallel",
        choices=["ddp", "fsdp"],
        default="ddp",
        help="ddp: every rank holds the whole model; fsdp: parameters, gradients and optimizer "
        "state sharded over the ranks (FSDP2 fully_shard)",
    )
    p.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute each sharding unit's activations in backward instead of keeping them",
    )
    p.add_argument(
        "--hybrid-sharding",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fsdp with several pods of several processes: shard inside a pod, replicate "
        "across pods (HSDP); --no-hybrid-sharding shards over every rank",
    )
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--sync-checkpoint", action="store_true", help="block the loop while saving")
    p.add_argument("--progress-interval", type=float, default=1.0, help="seconds")
    p.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds")
    p.add_argument("--trace-dir", default=None, help="debug: log every step's samples and loss")
    p.add_argument(
        "--min-step-seconds",
        type=float,
        default=0.0,
        help="debug: pace steps so tests can act between them",
    )
    p.add_argument(
        "--debug-stall-at-step",
        type=int,
        default=None,
        help="debug: in the first restart attempt the last rank stops at this step (hang tests)",
    )
    p.add_argument(
        "--debug-slow-rank",
        type=int,
        default=None,
        help="debug: this rank computes --debug-slow-seconds longer each step (straggler tests)",
    )
    p.add_argument(
        "--debug-slow-nodes-file",
        default=None,
        help="debug: ranks whose node (env NODE_NAME, from the downward API) is a line of this "
        "file (a path under the checkpoint directory) compute --debug-slow-seconds longer each "
        "step: a slow node (straggler tests)",
    )
    p.add_argument("--debug-slow-seconds", type=float, default=0.0, help="debug: see above")
    return p


def parse_options(argv: list[str]) -> Options:
    """Parse and check trainer options."""
    ns = build_parser().parse_args(argv)
    opts = Options(**vars(ns))
    if opts.global_batch < 1 or opts.micro_batch < 0 or opts.epochs < 0:
        raise SystemExit("--global-batch must be >= 1, --micro-batch and --epochs >= 0")
    return opts
