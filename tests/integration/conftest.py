"""The shared fixtures live in tests/conftest.py; OperatorProcess in tests/harness.py."""

from tests.harness import OperatorProcess

__all__ = ["OperatorProcess"]
