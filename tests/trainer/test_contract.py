"""Trainer and operator agree: the env the trainer reads, the reports the operator reads."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any, cast

import pytest
import torch

import ringleader.constants as operator_constants
from ringleader import failures, goodput, hang, poller, progress, reports, stragglers
from ringleader.constants import FailureClass
from ringleader.models import StragglerDetection
from ringleader.statusmodels import JobStatus
from ringleader_client import contract, termination
from ringleader_client.endpoint import serve_progress
from ringleader_client.progressfiles import PROGRESS_FILE, read_json
from ringleader_client.resume import data
from ringleader_client.resume.checkpoint import Committed
from ringleader_trainer import workerfigures
from ringleader_trainer.loop import Runtime
from ringleader_trainer.options import parse_options
from ringleader_trainer.report import Reporter
from ringleader_trainer.verdict import WorkerDeath, judge

from .conftest import pick_free_port


@pytest.mark.parametrize("name", contract.READ_NAMES)
def test_every_name_the_trainer_reads_is_in_the_operator_contract(name: str) -> None:
    assert name in operator_constants.ENV_CONTRACT


def test_the_agent_set_local_rank_is_not_mistaken_for_a_contract_name() -> None:
    assert contract.AGENT_LOCAL_RANK not in contract.READ_NAMES


def test_ports_agree_with_the_operator() -> None:
    assert contract.DEFAULT_RDZV_PORT == operator_constants.RENDEZVOUS_PORT
    assert contract.DEFAULT_PROGRESS_PORT == operator_constants.PROGRESS_PORT


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", (1, 1)), ("4", (4, 4)), ("2:8", (2, 8)), ("1:1", (1, 1))],
)
def test_nnodes_parses_fixed_and_elastic_forms(value: str, expected: tuple[int, int]) -> None:
    assert contract.parse_nnodes(value) == expected


@pytest.mark.parametrize("value", ["0", "3:2", "0:4", "x"])
def test_nnodes_rejects_nonsense(value: str) -> None:
    with pytest.raises(ValueError):
        contract.parse_nnodes(value)


def test_launch_env_reads_the_contract() -> None:
    env = {
        operator_constants.ENV_PET_NNODES: "2:4",
        operator_constants.ENV_PET_NPROC_PER_NODE: "8",
        operator_constants.ENV_PET_RDZV_ENDPOINT: "job-rdzv:29400",
        operator_constants.ENV_PET_RDZV_ID: "job-3",
        operator_constants.ENV_PET_MAX_RESTARTS: "5",
        operator_constants.ENV_CHECKPOINT_DIR: "/ckpt",
        operator_constants.ENV_CHECKPOINT_KEEP: "2",
        operator_constants.ENV_POD_NAME: "job-worker-1",
        operator_constants.ENV_REPLICA_INDEX: "1",
        operator_constants.ENV_RESTART_ATTEMPT: "3",
        operator_constants.ENV_PROGRESS_PORT: "29501",
    }
    got = contract.read_launch_env(env)
    assert (got.min_nodes, got.max_nodes, got.nproc_per_node) == (2, 4, "8")
    assert (got.rdzv_endpoint, got.rdzv_id, got.max_restarts) == ("job-rdzv:29400", "job-3", 5)
    assert (got.checkpoint_dir, got.checkpoint_keep, got.pod_name) == ("/ckpt", 2, "job-worker-1")
    assert (got.replica_index, got.restart_attempt, got.progress_port) == (1, 3, 29501)


# --- The reports: the trainer's definitions, the operator's mirror, and the trainer's real
# output read by the operator's readers.


def test_the_trainer_states_are_the_ones_the_operator_reads() -> None:
    assert [(s.name, s.value) for s in contract.TrainerState] == [
        (s.name, s.value) for s in reports.TrainerState
    ]


def test_the_progress_document_keys_and_paths_agree_with_the_operator() -> None:
    assert contract.PROGRESS_KEYS == reports.PROGRESS_KEYS
    assert contract.RANK_KEYS == reports.RANK_KEYS
    workers = (contract.WINDOW_STEPS, contract.MEDIAN_WORK_SECONDS, contract.RANKS)
    assert workers == (reports.WINDOW_STEPS, reports.MEDIAN_WORK_SECONDS, reports.RANKS)
    assert (contract.PREFLIGHT_KEYS, contract.LINK_KEYS) == (
        reports.PREFLIGHT_KEYS,
        reports.LINK_KEYS,
    )
    assert contract.INCARNATION_KEYS == reports.INCARNATION_KEYS
    assert (contract.PROGRESS_PATH, contract.HEARTBEATS_PATH) == (
        reports.PROGRESS_PATH,
        reports.HEARTBEATS_PATH,
    )
    assert (contract.FAILURE_CLASS, contract.FAILURE_MESSAGE) == (
        reports.FAILURE_CLASS,
        reports.FAILURE_MESSAGE,
    )
    assert (contract.NOT_YET_KEY, contract.NOT_YET) == (reports.NOT_YET_KEY, reports.NOT_YET)


def test_the_failure_classes_the_trainer_names_are_the_operators() -> None:
    assert {contract.COMMUNICATION, contract.USER_ERROR} <= set(FailureClass)


def reporter_writing_to(root: Path) -> Reporter:
    rt = Runtime(0, 2, 0, torch.device("cpu"), cast(Any, None), root, 2, "job-worker-0-a0", "job")
    return Reporter(rt, parse_options(["--progress-interval", "0"]), num_samples=100)


def test_the_reporters_real_output_reaches_status_hang_detection_and_goodput(
    tmp_path: Path,
) -> None:
    reporter = reporter_writing_to(tmp_path)
    saved = Committed(step=10, path=str(tmp_path / "step_000000010"), time=1_800_000_000.0)
    reporter.report(12, data.Position(1, 40), 0.5, samples=20, newest=saved)
    report = reports.parse_progress(read_json(tmp_path / PROGRESS_FILE))
    assert report is not None and report.training
    status = progress.apply_report(JobStatus(), report)
    assert status.progress is not None and status.checkpoint is not None
    assert (status.progress.step, status.progress.epoch, status.progress.world_size) == (12, 1, 2)
    assert status.progress.loss == 0.5
    assert (status.checkpoint.step, status.checkpoint.path) == (10, saved.path)
    watch = hang.watch_report(None, 0, report, now=5.0)
    assert watch is not None and watch.step == 12
    assert goodput.step_completed_at(report) == report.updated_at


def test_the_reporters_worker_figures_name_the_slow_rank_to_the_operator(tmp_path: Path) -> None:
    rt = Runtime(0, 2, 0, torch.device("cpu"), cast(Any, None), tmp_path, 2, "w-0", "job")
    reporter = Reporter(rt, parse_options(["--progress-interval", "0"]), 100, pods=["w-0", "w-1"])
    policy, watch = StragglerDetection(steps=10), None
    for step in range(30):
        times = [(0.0, 0.01, 0.3), (0.002, 0.3, 0.01)]  # rank 1 computes, rank 0 waits for it
        rows = torch.tensor([[0.5, 0.0, *t, 32, 2**30] for t in times], dtype=torch.float64)
        reporter.window.add(rows)
        reporter.report(step, data.Position(0, step), 0.5, samples=64, newest=None)
        report = reports.parse_progress(read_json(tmp_path / PROGRESS_FILE))
        watch = stragglers.observe(watch, 0, report, policy)
    assert report is not None and report.workers is not None
    assert report.workers.window_steps == workerfigures.WINDOW_STEPS
    slow = stragglers.persistent(watch, report, policy)
    assert [(r.rank, r.pod) for r in slow] == [(1, "w-1")]
    assert stragglers.spread(report) == pytest.approx(0.302 / ((0.302 + 0.01) / 2), rel=1e-3)


@pytest.mark.parametrize("state", list(contract.TrainerState)[1:])
def test_a_reporter_that_announces_a_stop_or_the_end_is_never_watched_for_a_hang(
    tmp_path: Path, state: contract.TrainerState
) -> None:
    reporter = reporter_writing_to(tmp_path)
    reporter.announce(12, data.Position(1, 40), None, state)
    report = reports.parse_progress(read_json(tmp_path / PROGRESS_FILE))
    assert report is not None and not report.training
    assert hang.watch_report(None, 0, report, now=5.0) is None
    assert goodput.step_completed_at(report) is None


@pytest.mark.parametrize(
    ("deaths", "klass"),
    [
        ([WorkerDeath(1, "RuntimeError: [gloo] Connection closed by peer")], "Communication"),
        ([WorkerDeath(1, "ValueError: bad config")], "UserError"),
    ],
)
def test_the_launchers_verdict_is_the_failure_class_the_operator_records(
    tmp_path: Path, deaths: list[WorkerDeath], klass: str
) -> None:
    end = judge(deaths)
    target = tmp_path / "termination-log"
    target.write_text("")
    (tmp_path / PROGRESS_FILE).write_text(json.dumps({"step": 40, "epoch": 1}))
    termination.write_termination_message(tmp_path, end.failure, target)
    terminated = {"exitCode": end.code, "reason": "Error", "message": target.read_text()}
    pod = {
        "metadata": {"name": "job-worker-0-a0", "uid": "u"},
        "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": terminated}}]},
    }
    failure = failures.classify_failure(pod)
    assert (failure.failure_class, failure.reason) == (klass, "ReportedByTrainer")
    assert failure.message == end.failure[contract.FAILURE_MESSAGE]
    # The same message also carries the last progress, which the operator mirrors.
    final = reports.parse_progress(reports.parse_termination_message(target.read_text()))
    assert final is not None and final.step == 40


def test_the_operator_tells_a_launcher_with_nothing_yet_from_any_other_404(
    tmp_path: Path,
) -> None:
    port = pick_free_port()
    server = serve_progress(tmp_path, "job-worker-0-a0", port)
    try:
        assert poller.get_json("127.0.0.1", reports.PROGRESS_PATH, port) == {}
    finally:
        server.shutdown()
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    try:  # e.g. a proxy that answers every address: no launcher there
        with pytest.raises(OSError):
            poller.get_json("127.0.0.1", reports.PROGRESS_PATH, foreign.server_address[1])
    finally:
        foreign.shutdown()
