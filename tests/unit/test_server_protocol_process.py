"""The model server as a program, over real sockets on loopback: real V2 clients at their
default settings, malformed HTTP, clients that disconnect, and connection timeouts.

Each server is the real ``python -m modelops.runtimes.server`` process, configured through its
``MODELOPS_SERVER_*`` environment like in a pod. The clients are tritonclient's HTTP client
(in the project's venv) and the KServe Python client, which runs in a venv of its own
(``make kserve-client``; ``make test`` builds it) because its dependencies conflict with the
project's pins. Timeouts are set short and every wait is bounded: a connection the server
should close but does not makes the test fail after a few seconds, never hang.
"""

import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.unit.test_server import SIGMOID_1, free_port, http, matrix, wait_until, write_artifact

REPOSITORY = Path(__file__).resolve().parents[2]
KSERVE_CLIENT = REPOSITORY / "tests" / "clients" / "kserve_client.py"
EXPECTED_PROBA = [SIGMOID_1, 1 - SIGMOID_1, 1 - SIGMOID_1, SIGMOID_1]
# Bound of every wait for the server to do something: far beyond any timeout set here.
PATIENCE_SECONDS = 10.0


@dataclass(frozen=True)
class Server:
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the server's /metrics, or None if it has no such series."""
        with closing(socket.create_connection(("127.0.0.1", self.port), timeout=5)) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            _, _, body = parse(read_all(sock))
        for line in body.decode().splitlines():
            series, _, value = line.rpartition(" ")
            if series.startswith(name + "{") and all(
                f'{key}="{val}"' in series for key, val in labels.items()
            ):
                return float(value)
        return None


@contextmanager
def server_process(directory: Path, digest: str | None = None, **settings: str) -> Iterator[Server]:
    """Run the server program on 127.0.0.1 until the block ends, on the artifact in
    ``directory/artifact`` with ``digest`` (the classifier artifact, written here, if None);
    ``settings`` are ``MODELOPS_SERVER_*`` variables without the prefix."""
    artifact_dir = directory / "artifact"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_SERVER_")}
    env |= {
        "MODELOPS_SERVER_HOST": "127.0.0.1",
        "MODELOPS_SERVER_PORT": str(port),
        "MODELOPS_SERVER_MODEL_NAME": "iris",
        "MODELOPS_SERVER_MODEL_VERSION": "v1",
        "MODELOPS_SERVER_ARTIFACT_DIR": str(artifact_dir),
        "MODELOPS_SERVER_ARTIFACT_DIGEST": digest or write_artifact(artifact_dir),
        # Debug level, so that the tests see that disconnects and malformed requests are
        # logged without a traceback even there.
        "MODELOPS_SERVER_LOG_LEVEL": "DEBUG",
    }
    env |= {f"MODELOPS_SERVER_{key.upper()}": value for key, value in settings.items()}
    server = Server(port=port, log=directory / "server.log")

    def ready() -> bool:
        try:
            return http("GET", f"{server.base}/v2/health/ready")[0] == 200
        except (ConnectionError, urllib.error.URLError):
            return False  # not listening yet

    with server.log.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelops.runtimes.server"], env=env, stderr=log
        )
        try:
            wait_until(ready, process, server.log)
            yield server
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server at its default settings, shared by the tests that leave it as they found it."""
    with server_process(tmp_path_factory.mktemp("server")) as running:
        yield running


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(PATIENCE_SECONDS)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with closing(socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_SECONDS)) as sock:
        sock.sendall(request)
        return parse(read_all(sock))


def eventually(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.05)  # poll interval: the loop waits for the condition, not for the sleep


def closed_by_server(sock: socket.socket) -> bool:
    """Wait (bounded) for the server to close ``sock``, discarding anything it sends first."""
    sock.settimeout(PATIENCE_SECONDS)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Real clients at their default settings


def test_tritonclient_gets_predictions_and_readable_errors(server: Server) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

        # set_data_from_numpy sends binary tensor data by default, and without requested
        # outputs the client asks for every output as binary data.
        matrix_input = triton.InferInput("input-0", [2, 2], "FP32")
        matrix_input.set_data_from_numpy(np.array([[3, 6], [1, 2]], dtype=np.float32))
        result = client.infer("iris", [matrix_input])
        assert result.as_numpy("predict").tolist() == [b"a", b"b"]
        assert result.as_numpy("predict_proba").ravel().tolist() == pytest.approx(
            EXPECTED_PROBA, rel=1e-12
        )

        # One tensor per feature, on the versioned path; one output in JSON, one binary.
        x1 = triton.InferInput("x1", [2], "FP64")
        x1.set_data_from_numpy(np.array([3.0, 1.0]))
        x2 = triton.InferInput("x2", [2], "INT32")
        x2.set_data_from_numpy(np.array([6, 2], dtype=np.int32))
        outputs = [
            triton.InferRequestedOutput("predict", binary_data=False),
            triton.InferRequestedOutput("predict_proba"),
        ]
        result = client.infer("iris", [x1, x2], model_version="v1", outputs=outputs)
        assert result.get_output("predict")["data"] == ["a", "b"]
        assert result.as_numpy("predict_proba").shape == (2, 2)

        wrong = triton.InferInput("input-0", [1, 3], "FP32")
        wrong.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32))
        with pytest.raises(InferenceServerException) as refused:
            client.infer("iris", [wrong])
        assert refused.value.status() == "400"
        assert refused.value.message() == (
            "Input 'input-0' has shape [1, 3]: the model expects [N, 2] with columns x1, x2"
        )
    finally:
        client.close()


def kserve_python() -> str:
    python = os.environ.get(
        "MODELOPS_KSERVE_PYTHON",
        str(Path.home() / ".cache" / "modelops" / "kserve-client-venv" / "bin" / "python"),
    )
    if not Path(python).exists():
        pytest.fail(f"No KServe client venv at {python}: run `make kserve-client` first")
    return python


def test_kserve_client_gets_predictions_and_readable_errors(server: Server) -> None:
    result = subprocess.run(
        [kserve_python(), str(KSERVE_CLIENT), server.base, "iris"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert (report["live"], report["ready"], report["model_ready"]) == (True, True, True)
    for case in ("matrix", "columns_binary_outputs"):
        outputs = report[case]
        assert outputs["predict"] == {"shape": [2], "data": ["a", "b"]}, case
        assert outputs["predict_proba"]["shape"] == [2, 2], case
        assert outputs["predict_proba"]["data"] == pytest.approx(EXPECTED_PROBA, rel=1e-6), case
    # The client shows the server's message only for exactly application/json.
    assert report["error"]["status"] == 400
    assert report["error"]["message"].startswith(
        "Input 'input-0' has shape [1, 3]: the model expects [N, 2] with columns x1, x2, "
        "'400 Bad Request'"
    )


# ---------------------------------------------------------------------------------------------
# Malformed HTTP and disconnects


@pytest.mark.parametrize(
    ("request_bytes", "message"),
    [
        (b"GARBAGE\r\n\r\n", "Invalid method"),
        (b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", "8190"),
        (b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: ten\r\n\r\n", "Content-Length"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "HTTPS traffic"),  # TLS hello
    ],
    ids=["bad method", "header too long", "bad content length", "tls on plain port"],
)
def test_malformed_http_gets_a_json_400_without_a_traceback(
    server: Server, request_bytes: bytes, message: str
) -> None:
    status, headers, body = exchange(server.port, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error.startswith("Malformed HTTP request: ")
    assert message in error
    assert "Traceback" not in server.log.read_text()


def test_client_disconnecting_mid_body_is_not_an_error(server: Server) -> None:
    body = json.dumps(matrix([[1, 2]])).encode()
    before = server.metric("modelops_server_requests_total", endpoint="infer", status="499") or 0
    with closing(socket.create_connection(("127.0.0.1", server.port), timeout=5)) as sock:
        sock.sendall(
            b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
        )
        # The handler runs once the headers are in: a later request on another connection is
        # answered after it started (one event loop, in order).
        assert http("GET", f"{server.base}/v2/health/live")[0] == 200

    def counted() -> bool:
        seen = server.metric("modelops_server_requests_total", endpoint="infer", status="499")
        return seen == before + 1

    eventually(counted, "the disconnected request was never counted as 499")
    assert server.metric("modelops_server_requests_total", endpoint="infer", status="500") is None
    log = server.log.read_text()
    assert "closed the connection during POST /v2/models/iris/infer" in log
    assert "Traceback" not in log


# ---------------------------------------------------------------------------------------------
# Timeouts


def test_slow_headers_are_cut_off_while_normal_requests_are_served(tmp_path: Path) -> None:
    # The idle timeout stays at its default (longer than the whole loop below), so it is the
    # header timeout that closes the slow connections.
    with server_process(tmp_path, header_timeout_seconds="0.5") as server, ExitStack() as stack:
        slow = []
        for _ in range(20):
            sock = stack.enter_context(
                closing(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            )
            sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            slow.append(sock)
        open_ = set(slow)
        # Slowloris: one more byte of a header value per connection every 50 ms, for at most
        # 10 s (200 bytes: no header size or count limit of the parser ends it first).
        for _ in range(200):
            for sock in list(open_):
                try:
                    sock.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    open_.discard(sock)
            readable, _, _ = select.select(list(open_), [], [], 0.05)
            for sock in readable:
                try:
                    gone = sock.recv(65536) == b""
                except ConnectionResetError:
                    gone = True
                if gone:
                    open_.discard(sock)
            # Meanwhile, ordinary clients are served.
            status, _ = http("POST", f"{server.base}/v2/models/iris/infer", matrix([[3, 6]]))
            assert status == 200
            if not open_:
                break
        assert not open_, f"{len(open_)} of 20 slow connections still open after 10 s"
        assert "no complete request headers within 0.5s" in server.log.read_text()


def test_slow_body_gets_408_and_the_connection_is_closed(tmp_path: Path) -> None:
    with server_process(tmp_path, body_timeout_seconds="0.5") as server:
        body = json.dumps(matrix([[1, 2]])).encode()
        request = (
            b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        # Part of the body, then nothing: 408 and the connection is closed (exchange reads
        # until the server closes it).
        status, headers, answer = exchange(server.port, request + body[:10])
        assert status == 408
        assert headers["content-type"] == "application/json"
        assert json.loads(answer) == {"error": "The request body did not arrive within 0.5s"}
        assert server.metric("modelops_server_requests_total", endpoint="infer", status="408")
        # A body sent at once is not affected.
        status, _, answer = exchange(server.port, request + body)
        assert status == 200
        assert json.loads(answer)["outputs"][0]["data"] == ["b"]


def test_idle_connections_are_closed(tmp_path: Path) -> None:
    with server_process(tmp_path, idle_timeout_seconds="0.5") as server:
        # Opened and never used.
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=5)) as sock:
            assert closed_by_server(sock)
        # Kept alive after a response, then left idle.
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=5)) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            response = b""
            while b'{"live": true}' not in response:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection before answering"
                response += chunk
            assert response.startswith(b"HTTP/1.1 200")
            assert closed_by_server(sock)
