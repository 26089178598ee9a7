"""Resource quantities read as Kubernetes reads them: the same amounts the `kubernetes` client
library's parser gives, and nothing the API server would refuse."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes.utils import parse_quantity as library_parse

from ringleader.quantity import parse_quantity

ACCEPTED = ["2", "500m", "4Gi", "1.5Gi", "1e3", "1E-2", ".5", "1.", "-1", "+2k", "100n", "3u",
            "7Ei", "2P", 2, 0.5, Decimal("1.25")]  # fmt: skip


@pytest.mark.parametrize("quantity", ACCEPTED, ids=str)
def test_a_quantity_has_the_amount_kubernetes_gives_it(quantity: object) -> None:
    assert parse_quantity(quantity) == library_parse(quantity)


@pytest.mark.parametrize(
    "quantity",
    # The library takes the last five (Python's Decimal reads them); the API server does not.
    ["", "abc", "Gi", "1ki", "1.2.3", "1 Gi", "NaN", "Infinity", "1_000", "1e3k", True],
    ids=repr,
)
def test_what_is_not_a_quantity_is_refused(quantity: object) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(quantity)


def test_binary_suffixes_are_exact_at_any_size() -> None:
    assert parse_quantity("1Ei") == Decimal(2**60)
    assert parse_quantity("0.5Ki") == Decimal(512)
