"""Kubernetes resource quantities (2, 500m, 4Gi, 1e3) as exact decimals.

The grammar is apimachinery's (pkg/api/resource/quantity.go): a signed decimal number, then a
binary suffix (Ki..Ei), a decimal one (n, u, m, k, M..E) or an exponent (e3, E-2).
"""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<suffix>[KMGTPE]i|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(quantity: object) -> Decimal:
    """The amount a quantity stands for (an int or a float is taken as a plain number).
    ValueError when it is not a quantity."""
    if isinstance(quantity, bool):
        raise ValueError(f"{quantity!r} is not a quantity")
    if isinstance(quantity, int | float | Decimal):
        return Decimal(str(quantity))
    found = _QUANTITY.fullmatch(str(quantity))
    if found is None:
        raise ValueError(f"{quantity!r} is not a quantity")
    number = Decimal(found["number"])
    if found["exponent"] is not None:
        return number.scaleb(int(found["exponent"]))
    suffix = found["suffix"]
    if suffix is None:
        return number
    if suffix in _BINARY:
        return number * Decimal(1024) ** _BINARY[suffix]
    return number.scaleb(_DECIMAL[suffix])
