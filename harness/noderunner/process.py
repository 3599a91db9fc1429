"""Container processes: start one through ``nsexec``, signal its process group, read its end.

Every container runs in its own session (``start_new_session``), so its process group ID is
its PID and a signal to the group reaches everything it forked that did not leave the group.
Its stdout and stderr go to one log file; the previous run's log is kept as ``.log.1``.

``PR_SET_PDEATHSIG`` is armed by ``nsexec`` itself rather than in a ``preexec_fn``: the runner
is multi-threaded, and Python code between fork and exec can deadlock on a lock another thread
held at fork time. The death signal is bound to the *thread* that forked the child, so
containers must be started from a thread that outlives them (the pod's worker thread, which
only ends after all its processes are gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.noderunner.volumes import Mount

NSEXEC = Path(__file__).with_name("nsexec.py")
#: How long the set-up before exec (mounts, interpreter start) may take.
SETUP_TIMEOUT = 30.0


class ContainerStartError(Exception):
    """The container could not be started; ``reason`` is the kubelet-style reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one container instance."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: Path
    spec_path: Path
    scratch: Path
    isolate: bool
    hostname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    #: Host directories that stay visible at their own path even where a volume covers them.
    keep: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Exit:
    """How a container process ended: kubelet-style exit code (128+N for signal N)."""

    exit_code: int
    signal: int | None
    finished_at: float


def rotate_log(path: Path) -> None:
    """Keep the previous run's output as ``<name>.1``; the new run starts an empty log."""
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


class ContainerProcess:
    """One running container instance (the runner's direct child)."""

    def __init__(self, popen: subprocess.Popen[bytes], started_at: float) -> None:
        self._popen = popen
        self.started_at = started_at
        self.exit: Exit | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> Exit | None:
        """The exit, once the process has ended (then also every process left in its group is
        killed: a container's children do not outlive it)."""
        if self.exit is not None:
            return self.exit
        code = self._popen.poll()
        if code is None:
            return None
        self.signal_group(signal.SIGKILL)
        if code < 0:
            self.exit = Exit(128 - code, -code, time.time())
        else:
            self.exit = Exit(code, None, time.time())
        return self.exit

    def wait(self, timeout: float | None = None) -> Exit | None:
        """Block until the process ends (or ``timeout``); return ``poll()``."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)
        return self.poll()

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the container's process group; a group that is gone is fine.

        The group ID stays reserved while any member lives, so this cannot hit a stranger.
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


def start(spec: LaunchSpec, runner_pid: int) -> ContainerProcess:
    """Start the container; ``ContainerStartError`` if it could not be set up or exec'd."""
    spec.spec_path.touch(mode=0o600)
    spec.spec_path.write_text(
        json.dumps(
            {
                "argv": spec.argv,
                "env": spec.env,
                "cwd": spec.cwd,
                "isolate": spec.isolate,
                "hostname": spec.hostname,
                "scratch": str(spec.scratch),
                "parent": runner_pid,
                "mounts": [
                    {"source": m.source, "target": m.target, "readOnly": m.read_only}
                    for m in spec.mounts
                ],
                "keep": spec.keep,
            }
        )
    )
    rotate_log(spec.log_path)
    read_end, write_end = os.pipe()
    try:
        with spec.log_path.open("ab") as log:
            popen = subprocess.Popen(
                # -I -S: no site-packages and no environment for the tiny set-up script.
                [sys.executable, "-I", "-S", str(NSEXEC), str(spec.spec_path), str(write_end)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                start_new_session=True,
                cwd="/",
                env={},
            )
    finally:
        os.close(write_end)
    try:
        report = _read_until_exec(read_end, popen)
    finally:
        os.close(read_end)
    # The spec may hold Secret values; the set-up script has read it by now.
    spec.spec_path.unlink(missing_ok=True)
    if report is not None:
        popen.wait()
        raise ContainerStartError(
            str(report.get("reason", "StartError")), str(report.get("message", ""))
        )
    return ContainerProcess(popen, time.time())


def _read_until_exec(fd: int, popen: subprocess.Popen[bytes]) -> dict[str, object] | None:
    """Read the error pipe until EOF (exec closed it) and return the set-up error, if any."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + SETUP_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            return {"reason": "StartError", "message": "container set-up timed out"}
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    if not chunks:
        return None
    try:
        report = json.loads(b"".join(chunks))
    except ValueError:
        return {"reason": "StartError", "message": b"".join(chunks).decode(errors="replace")}
    return dict(report)


def runtime_paths() -> list[str]:
    """The host directories ``python`` in a container needs: the runner's interpreter
    (virtual environment and base installation) and the project source its editable install
    points at. Outermost first, without paths nested in another."""
    project = Path(__file__).resolve().parents[2]
    paths = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, project)})
    return [p for p in paths if not any(p.startswith(q.rstrip("/") + "/") for q in paths)]


def isolation_available() -> bool:
    """Whether containers can get a private mount namespace here (root, unshare permitted)."""
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            "import ctypes; libc = ctypes.CDLL(None, use_errno=True);"
            "raise SystemExit(libc.unshare(0x00020000 | 0x04000000) != 0)",
        ],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return probe.returncode == 0
