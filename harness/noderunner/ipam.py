"""Loopback pod addresses: one 127.x.y.z per live pod, handed out round-robin.

Linux routes all of 127.0.0.0/8 to ``lo``, so a server bound to 127.77.0.2:8080 and another
bound to 127.77.0.3:8080 coexist without any interface configuration. Round-robin (like the
host-local CNI plugin) keeps a just-freed address out of use for as long as possible, so a
client still holding the address of a deleted pod does not reach its successor.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Set


class AddressPoolExhaustedError(RuntimeError):
    """Every address of the prefix belongs to a live pod."""


def _candidates(prefix: str) -> list[str]:
    """Every usable address under ``prefix`` (``127.77`` or ``127.77.3``), in order."""
    octets = prefix.strip(".").split(".")
    if not 2 <= len(octets) <= 3 or octets[0] != "127" or not all(o.isdigit() for o in octets):
        raise ValueError(f"--ip-prefix must look like 127.N or 127.N.M, not {prefix!r}")
    if not all(0 <= int(o) <= 255 for o in octets):
        raise ValueError(f"invalid octet in --ip-prefix {prefix!r}")
    thirds = [int(octets[2])] if len(octets) == 3 else list(range(256))
    base = f"{octets[0]}.{octets[1]}"
    # .0 and .1 of the first block and every .0/.255 are skipped: they read like network,
    # gateway and broadcast addresses, which confuses people even though loopback has none.
    return [
        f"{base}.{third}.{last}"
        for third in thirds
        for last in range(1, 255)
        if not (third == thirds[0] and last == 1)
    ]


class Allocator:
    """Hands out the addresses under one prefix; not thread-safe (the agent holds a lock)."""

    def __init__(self, prefix: str) -> None:
        self._pool = _candidates(prefix)
        self._members = frozenset(self._pool)
        self._next = 0

    def contains(self, address: str) -> bool:
        """Whether ``address`` belongs to this allocator's prefix."""
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            return False
        return address in self._members

    def allocate(self, in_use: Set[str], preferred: str | None = None) -> str:
        """A free address: ``preferred`` if it is ours and free, else the next one round-robin.

        ``preferred`` lets a restarted runner give a pod back the address it already reported.
        """
        if preferred and preferred not in in_use and self.contains(preferred):
            return preferred
        for index in self._order():
            address = self._pool[index]
            if address not in in_use:
                self._next = (index + 1) % len(self._pool)
                return address
        raise AddressPoolExhaustedError(f"all {len(self._pool)} pod addresses are in use")

    def _order(self) -> Iterator[int]:
        size = len(self._pool)
        return ((self._next + i) % size for i in range(size))
