"""How kube._call sorts what the API server answers: what to retry, what is fine, what fails."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import urllib3

from ringleader.apiclient import ApiError
from ringleader.kube import RetryableError, _call


def raising(error: Exception) -> Callable[[], None]:
    def call() -> None:
        raise error

    return call


@pytest.mark.parametrize("status", [409, 429, 500, 503])
def test_a_conflict_throttling_or_a_server_error_is_retried(status: int) -> None:
    with pytest.raises(RetryableError):
        _call("patch", "DistributedTrainingJob", raising(ApiError(status=status)))


@pytest.mark.parametrize(
    "error",
    [
        urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"),  # type: ignore[arg-type]
        urllib3.exceptions.ProtocolError("connection aborted"),
        urllib3.exceptions.MaxRetryError(None, "/", None),  # type: ignore[arg-type]
    ],
    ids=["timeout", "reset", "refused"],
)
def test_no_answer_at_all_is_retried_not_a_traceback(error: Exception) -> None:
    with pytest.raises(RetryableError, match="no answer"):
        _call("create", "Pod", raising(error))


def test_the_benign_status_is_none_and_a_client_error_is_raised() -> None:
    assert _call("delete", "Pod", raising(ApiError(status=404)), benign=404) is None
    with pytest.raises(ApiError):
        _call("create", "Pod", raising(ApiError(status=422)))
