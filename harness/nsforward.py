"""Forward TCP connections made inside network namespaces to an address of the host.

``python -m harness.nsforward --to 127.0.0.1:6443 --listen mo1-0:127.0.0.1:6443 ...``

The API server of the local cluster listens on 127.0.0.1 of the host only. What runs in a real
node's network namespace (kube-proxy) reaches it at the same address and port of its own
namespace through this forwarder, so the admin kubeconfig works there unchanged. Each listening
socket is created inside its namespace (``setns`` on the main thread, then back); every other
thread, and so every upstream connection, stays in the host's namespace. Needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import sys
import threading
from collections.abc import Sequence

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def listen_in(netns: str, host: str, port: int) -> socket.socket:
    """A listening socket bound to ``host:port`` inside the named network namespace."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            return socket.create_server((host, port))
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, upstream: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        try:
            server = socket.create_connection(upstream, timeout=10)
        except OSError:
            client.close()
            continue
        server.settimeout(None)
        pumps = [
            threading.Thread(target=_pump, args=(client, server), daemon=True),
            threading.Thread(target=_pump, args=(server, client), daemon=True),
        ]
        for t in pumps:
            t.start()
        threading.Thread(target=_close_after, args=(pumps, client, server), daemon=True).start()


def _close_after(pumps: list[threading.Thread], *socks: socket.socket) -> None:
    for t in pumps:
        t.join()
    for s in socks:
        s.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.nsforward", description=__doc__)
    parser.add_argument("--to", required=True, help="HOST:PORT in the host's namespace")
    parser.add_argument("--listen", action="append", required=True, help="NETNS:HOST:PORT")
    args = parser.parse_args(argv)
    upstream = _address(args.to)
    listeners = []
    for spec in args.listen:
        netns, _, address = spec.partition(":")
        listeners.append(listen_in(netns, *_address(address)))
    threads = [
        threading.Thread(target=_serve, args=(sock, upstream), daemon=True) for sock in listeners
    ]
    for t in threads:
        t.start()
    print(f"Forwarding {', '.join(args.listen)} to {args.to}", flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
