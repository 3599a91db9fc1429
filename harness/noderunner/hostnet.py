"""Sharing the loopback network with other runners (and anything else) on the same machine.

Several local clusters may run at once on one machine (parallel test sessions, a demo next to
the tests); their pods all bind loopback addresses. Two guards keep them apart:

* each runner claims its address prefix for as long as it lives, by binding an abstract Unix
  socket named after it: nothing is written to disk, and the kernel releases the claim when the
  runner dies, however it dies. A prefix another runner holds is not used twice;
* an address on which something already listens (a process no runner knows about) is skipped
  when a pod address is handed out.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

_CLAIM = "\0modelops-noderunner/ip-prefix/"
_LISTEN = "0A"


class PrefixClaim:
    """A held address prefix; ``release()`` (or the end of the process) frees it."""

    def __init__(self, prefix: str, sock: socket.socket) -> None:
        self.prefix = prefix
        self._sock = sock

    def release(self) -> None:
        self._sock.close()


def try_claim(prefix: str) -> PrefixClaim | None:
    """Claim ``prefix`` for this process, or None if another runner holds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(_CLAIM + prefix)
    except OSError:
        sock.close()
        return None
    return PrefixClaim(prefix, sock)


def _fallbacks(preferred: str) -> Iterator[str]:
    # 127.0.x and 127.1.x are what other software uses (127.0.0.1, 127.0.1.1): never those.
    for second in (*range(77, 255), *range(2, 77)):
        prefix = f"127.{second}"
        if prefix != preferred:
            yield prefix


def claim(preferred: str) -> PrefixClaim:
    """Claim ``preferred`` (``auto``: none in particular) or, if taken, the first free 127.N."""
    if preferred != "auto":
        held = try_claim(preferred)
        if held is not None:
            return held
    for prefix in _fallbacks(preferred):
        held = try_claim(prefix)
        if held is not None:
            return held
    raise RuntimeError("every 127.N address prefix is held by another local runner")


def listening_addresses() -> set[str]:
    """IPv4 addresses with a listening TCP socket on this machine (from ``/proc/net/tcp``)."""
    found: set[str] = set()
    try:
        with open("/proc/net/tcp") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[3] == _LISTEN:
                    address = fields[1].split(":")[0]
                    # Little-endian hex: 0100007F is 127.0.0.1.
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    except OSError:
        pass
    return found
