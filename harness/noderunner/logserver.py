"""The runner's kubelet endpoint: container logs over HTTPS, so ``kubectl logs`` works.

The API server proxies ``kubectl logs`` to ``https://<node InternalIP>:<kubeletEndpoint.Port>
/containerLogs/<namespace>/<pod>/<container>`` with the query parameters ``follow``,
``tailLines``, ``limitBytes`` and ``previous`` (``timestamps`` and ``sinceSeconds`` are
accepted and ignored: the runner stores raw output without timestamps). The server listens on
127.0.0.1 only, with a self-signed certificate made by ``openssl`` on first start (the API
server does not verify kubelet certificates unless ``--kubelet-certificate-authority`` is set),
and accepts any client: it serves nothing but logs.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from harness.noderunner import logfiles

log = logging.getLogger("harness.noderunner")

#: (namespace, pod, container) -> "running", "restarting" (waiting in back-off) or None.
ContainerState = Callable[[str, str, str], str | None]
FOLLOW_POLL_SECONDS = 0.2
UNSUPPORTED = (
    "the local runner serves container logs only: kubectl exec, attach and port-forward "
    "are not supported (dial the pod IP instead of port-forwarding)"
)


def ensure_certificate(directory: Path, node_name: str) -> tuple[Path, Path]:
    """A self-signed serving certificate for 127.0.0.1, made once per state directory."""
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    if cert.exists() and key.exists():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "3650",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={node_name}",
            "-addext", f"subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:{node_name}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("true", "1")


def _number(query: dict[str, list[str]], name: str) -> int | None:
    value = query.get(name, [""])[-1]
    return int(value) if value.lstrip("-").isdigit() else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("Log server: " + format, *args)

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self._reply(501, UNSUPPORTED)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            self._reply(200, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._reply(501 if parts[0] in ("exec", "attach", "portForward") else 404, UNSUPPORTED)
            return
        _, namespace, pod, container = parts
        query = parse_qs(url.query)
        directory = logfiles.find_pod_dir(self.server.state_dir, namespace, pod)
        if directory is None:
            self._reply(404, f'pod "{pod}" in namespace "{namespace}" has not run on this node')
            return
        previous = _flag(query, "previous")
        # "previous" is the instance of lastState: while a container waits to be restarted,
        # that is the one that just exited, whose log has not been rotated yet.
        restarting = self.server.container_state(namespace, pod, container) == "restarting"
        path = logfiles.log_path(directory, container, previous and not restarting)
        if not path.exists():
            what = "previous terminated container" if previous else "container"
            self._reply(400, f'{what} "{container}" in pod "{pod}" not found')
            return
        limit = _number(query, "limitBytes")
        with path.open("rb") as f:
            inode = path.stat().st_ino
            data = logfiles.tail(f.read(), _number(query, "tailLines"))
            if not (_flag(query, "follow") and not previous):
                if limit is not None:
                    data = data[:limit]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self._follow(f, path, inode, data, limit, (namespace, pod, container))

    def _follow(
        self,
        f: BinaryIO,
        path: Path,
        inode: int,
        head: bytes,
        limit: int | None,
        who: tuple[str, str, str],
    ) -> None:
        """Stream the log from ``f`` until the container stops running or the client leaves."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0

        def chunk(data: bytes) -> None:
            nonlocal sent
            if limit is not None:
                data = data[: max(0, limit - sent)]
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                sent += len(data)

        try:
            chunk(head)
            while limit is None or sent < limit:
                new = f.read(65536)
                if new:
                    chunk(new)
                    continue
                rotated = not path.exists() or path.stat().st_ino != inode
                if rotated or self.server.container_state(*who) != "running":
                    chunk(f.read())
                    break
                time.sleep(FOLLOW_POLL_SECONDS)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state_dir: Path, container_state: ContainerState, port: int) -> None:
        self.state_dir = state_dir
        self.container_state = container_state
        super().__init__(("127.0.0.1", port), _Handler)


class LogServer:
    """The HTTPS endpoint, served from a background thread."""

    def __init__(self, state_dir: Path, node_name: str, container_state: ContainerState) -> None:
        cert, key = ensure_certificate(state_dir / "pki", node_name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = _Server(state_dir, container_state, 0)
        # The handshake happens in the handler thread, so a slow client cannot stall accept().
        self._server.socket = context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="log server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("Serving container logs on https://127.0.0.1:%d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
