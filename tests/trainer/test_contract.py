"""The trainer reads only names the operator's env contract defines."""

from __future__ import annotations

import pytest

import ringleader.constants as operator_constants
from ringleader_trainer import contract


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
