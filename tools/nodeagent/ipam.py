"""Pod addresses from the bridge's range, persisted so a restarted agent never reuses a live one."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path


class PoolExhausted(RuntimeError):
    """Every address of the range is taken."""


def pick_address(
    network: ipaddress.IPv4Network, taken: set[str], last: str | None
) -> ipaddress.IPv4Address:
    """The next free host address after `last`, wrapping; skips the gateway (first address).

    Round-robin rather than lowest-free, so a just-freed address is not handed out again while
    stale copies of it may still sit in other pods' hosts files.
    """
    first = int(network.network_address) + 2
    end = int(network.broadcast_address)  # exclusive
    size = end - first
    start = int(ipaddress.IPv4Address(last)) + 1 - first if last else 0
    for step in range(size):
        candidate = ipaddress.IPv4Address(first + (start + step) % size)
        if str(candidate) not in taken:
            return candidate
    raise PoolExhausted(f"no free address in {network}")


class AddressBook:
    """Allocations owner (pod uid) → address, kept in a JSON file."""

    def __init__(self, path: Path, network: ipaddress.IPv4Network) -> None:
        self.path, self.network = path, network
        data = json.loads(path.read_text()) if path.exists() else {}
        self.owners: dict[str, str] = data.get("owners", {})
        self.last: str | None = data.get("last")

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"owners": self.owners, "last": self.last}, indent=1))
        os.replace(temporary, self.path)

    def allocate(self, owner: str) -> str:
        """The owner's address, allocating one on first call."""
        if owner in self.owners:
            return self.owners[owner]
        address = str(pick_address(self.network, set(self.owners.values()), self.last))
        self.owners[owner] = self.last = address
        self._save()
        return address

    def release(self, owner: str) -> None:
        """Give the owner's address back (no-op when it has none)."""
        if self.owners.pop(owner, None) is not None:
            self._save()
