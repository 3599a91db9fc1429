"""Starting, probing, measuring and stopping the two servers under test.

Each server is one process on 127.0.0.1 with free ports picked at start, pinned to one CPU
with ``taskset`` (the load generator runs on another), with its log in the work directory.
Neither server spawns worker processes in the configuration used here, but memory is summed
over the whole process tree anyway, so a server that did would be charged for its workers.
"""

import asyncio
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen

HOST = "127.0.0.1"
MODEL_NAME = "iris"
MODEL_VERSION = "v1"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
READY_PATH = "/v2/health/ready"
#: How often the cold-start probe asks ``/v2/health/ready``; the resolution of that number.
READY_POLL_SECONDS = 0.005
#: A server that is not ready after this long has failed to start.
START_TIMEOUT_SECONDS = 120.0
#: Threads for numpy's BLAS and OpenMP: one, as the server itself is pinned to one CPU.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: the command, its environment and where it listens.

    ``server_name`` is the ``name`` the server reports on ``GET /v2``; checking it proves the
    probes reached the process we started, not something else that took the port meanwhile.
    """

    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    server_name: str
    log_path: Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _pinned(argv: list[str], cpu: int | None) -> list[str]:
    return argv if cpu is None else ["taskset", "--cpu-list", str(cpu), *argv]


def ours(python: str, artifact_dir: Path, digest: str, work: Path, cpu: int | None) -> ServerSpec:
    """The reference server, ``python -m modelops.runtimes.server``, with its defaults
    (access log off, metrics and feature histograms on)."""
    port = free_port()
    env = {
        **os.environ,
        **SINGLE_THREAD_ENV,
        "MODELOPS_SERVER_MODEL_NAME": MODEL_NAME,
        "MODELOPS_SERVER_MODEL_VERSION": MODEL_VERSION,
        "MODELOPS_SERVER_ARTIFACT_DIR": str(artifact_dir),
        "MODELOPS_SERVER_ARTIFACT_DIGEST": digest,
        "MODELOPS_SERVER_HOST": HOST,
        "MODELOPS_SERVER_PORT": str(port),
    }
    return ServerSpec(
        key="modelops",
        label="modelops server",
        argv=_pinned([python, "-m", "modelops.runtimes.server"], cpu),
        env=env,
        cwd=work,
        port=port,
        server_name="modelops-server",
        log_path=work / "modelops.log",
    )


#: Server-wide MLServer settings that differ from its defaults, and why.
MLSERVER_SETTINGS: dict[str, Any] = {
    # One process: inference in the process that serves HTTP, like ours. The default (1)
    # adds a worker process and a queue hop per request.
    "parallel_workers": 0,
    # debug=true (the default) turns on uvicorn's access log, one line per request; ours
    # logs no requests by default.
    "debug": False,
    "host": HOST,
}


def mlserver(
    venv: Path, runtime_dir: Path, artifact_dir: Path, work: Path, cpu: int | None
) -> ServerSpec:
    """MLServer serving the same artifact through ``mlserver_runtime.LinearRuntime``.

    Writes ``settings.json`` and ``<model>/model-settings.json`` into a fresh model
    repository under ``work`` and starts ``mlserver start`` on it. gRPC (which MLServer 1.7.1
    always starts) and the separate metrics server get ports of their own and stay idle;
    adaptive batching stays off (its default).
    """
    repository = work / "mlserver-repository"
    (repository / MODEL_NAME).mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = {
        **MLSERVER_SETTINGS,
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "environments_dir": str(work / "mlserver-envs"),
        "metrics_dir": str(work / "mlserver-metrics"),
    }
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_runtime.LinearRuntime",
        "parameters": {"uri": str(artifact_dir), "version": MODEL_VERSION},
    }
    (repository / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    (repository / MODEL_NAME / "model-settings.json").write_text(
        json.dumps(model_settings, indent=2), encoding="utf-8"
    )
    env = {**os.environ, **SINGLE_THREAD_ENV, "PYTHONPATH": str(runtime_dir)}
    return ServerSpec(
        key="mlserver",
        label="MLServer",
        argv=_pinned([str(venv / "bin" / "mlserver"), "start", str(repository)], cpu),
        env=env,
        cwd=work,
        port=port,
        server_name="mlserver",
        log_path=work / "mlserver.log",
    )


class ServerStartError(RuntimeError):
    """The server exited, or did not become ready in time; the message ends with its log."""


@dataclass(frozen=True)
class ColdStart:
    """Seconds from spawning the process to its first 200 on ``/v2/health/ready`` and to its
    first successful inference (which includes the ready time)."""

    ready_s: float
    first_inference_s: float


class RunningServer:
    """A started server process; use :meth:`start` to get one and :meth:`stop` to end it."""

    def __init__(self, spec: ServerSpec, process: asyncio.subprocess.Process) -> None:
        self.spec = spec
        self.process = process

    @classmethod
    async def start(cls, spec: ServerSpec, infer_body: bytes) -> tuple["RunningServer", ColdStart]:
        """Spawn the server, wait for ready, send one inference and time both.

        Raises :class:`ServerStartError` (after stopping the process) if it exits, never gets
        ready within ``START_TIMEOUT_SECONDS``, answers the inference with an error, or turns
        out to be some other server.
        """
        with spec.log_path.open("ab") as log:
            spawned = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                *spec.argv, env=spec.env, cwd=spec.cwd, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        server = cls(spec, process)
        try:
            ready = await server._wait_ready(spawned)
            status, body = await loadgen.fetch(HOST, spec.port, "POST", INFER_PATH, infer_body)
            inferred = time.perf_counter()
            if status != 200:
                raise server._error(f"answered its first inference with {status}: {body[:200]!r}")
            await server._check_identity()
        except BaseException:
            await server.stop()
            raise
        return server, ColdStart(ready_s=ready - spawned, first_inference_s=inferred - spawned)

    async def _wait_ready(self, spawned: float) -> float:
        while time.perf_counter() - spawned < START_TIMEOUT_SECONDS:
            if self.process.returncode is not None:
                raise self._error(f"exited with code {self.process.returncode} before ready")
            try:
                status, _ = await loadgen.fetch(HOST, self.spec.port, "GET", READY_PATH)
            except (OSError, TimeoutError, loadgen.ResponseError):
                status = 0
            if status == 200:
                return time.perf_counter()
            await asyncio.sleep(READY_POLL_SECONDS)
        raise self._error(f"was not ready after {START_TIMEOUT_SECONDS:.0f}s")

    async def _check_identity(self) -> None:
        _, body = await loadgen.fetch(HOST, self.spec.port, "GET", "/v2")
        name = json.loads(body).get("name")
        if name != self.spec.server_name:
            raise self._error(f"port {self.spec.port} is served by {name!r}, not by our server")

    def _error(self, what: str) -> ServerStartError:
        tail = self.spec.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        return ServerStartError(f"{self.spec.label} {what}; end of {self.spec.log_path}:\n{tail}")

    async def infer(self, body: bytes) -> dict[str, Any]:
        """Send one inference request outside any measurement; return the decoded answer."""
        status, answer = await loadgen.fetch(HOST, self.spec.port, "POST", INFER_PATH, body)
        if status != 200:
            raise RuntimeError(f"{self.spec.label} answered {status}: {answer[:200]!r}")
        decoded: dict[str, Any] = json.loads(answer)
        return decoded

    def memory(self) -> "Memory":
        """The memory of the server's process tree now."""
        return tree_memory(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's process tree has used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in process_tree(self.process.pid):
            fields = _stat_fields(pid)
            if fields is not None:
                total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return total

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if the process is still there after 15 seconds."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process tree in MiB: now (``VmRSS``) and the peak (``VmHWM``),
    each summed over the processes (pages shared between them are counted once per
    process), and how many processes there were."""

    rss_mib: float
    peak_rss_mib: float
    processes: int


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (``[0]`` is the state), or None
    if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that exist now, found through the parent ids in
    ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree = [root]
    for pid in tree:  # grows while it is walked: breadth-first over the descendants
        tree.extend(children.get(pid, []))
    return tree


def tree_memory(root: int) -> Memory:
    """Sum ``VmRSS`` and ``VmHWM`` from ``/proc/<pid>/status`` over the process tree."""
    rss_kib = peak_kib = 0
    count = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" not in fields:  # a zombie has no memory left to report
            continue
        rss_kib += int(fields["VmRSS"].split()[0])
        peak_kib += int(fields["VmHWM"].split()[0])
        count += 1
    return Memory(rss_mib=rss_kib / 1024, peak_rss_mib=peak_kib / 1024, processes=count)
