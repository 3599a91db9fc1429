"""Where container logs and termination messages live, and how they are cut down.

Layout under the state directory::

    pods/<namespace>_<pod>_<uid>/<container>.log              stdout and stderr, current run
    pods/<namespace>_<pod>_<uid>/<container>.log.1            the previous run
    pods/<namespace>_<pod>_<uid>/<container>.termination-log  mounted at terminationMessagePath

Logs are kept after the pod is deleted (only its volumes are removed), so the output of a
finished Job stays readable with ``python -m harness.noderunner logs``.
"""

from __future__ import annotations

from pathlib import Path

#: The kubelet's limits for termination messages.
MAX_MESSAGE_BYTES = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


def pod_dir(state_dir: Path, namespace: str, name: str, uid: str) -> Path:
    """The pod's directory (the uid keeps a re-created pod of the same name apart)."""
    return state_dir / "pods" / f"{namespace}_{name}_{uid}"


def find_pod_dir(state_dir: Path, namespace: str, name: str) -> Path | None:
    """The newest directory of a pod with this name, or None if it never ran here."""
    candidates = [
        p
        for p in (state_dir / "pods").glob(f"{namespace}_{name}_*")
        # The uid is the last part; pod names have no "_" but be exact anyway.
        if p.name.rsplit("_", 1)[0] == f"{namespace}_{name}"
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def log_path(directory: Path, container: str, previous: bool = False) -> Path:
    """The log of the container's current (or, with ``previous``, the run before) instance."""
    return directory / f"{container}.log{'.1' if previous else ''}"


def termination_path(directory: Path, container: str) -> Path:
    """The host file behind the container's ``terminationMessagePath``."""
    return directory / f"{container}.termination-log"


def tail(data: bytes, lines: int | None = None, limit_bytes: int | None = None) -> bytes:
    """The last ``lines`` lines of ``data`` (a trailing newline does not start a line), then
    at most the last ``limit_bytes`` bytes of those."""
    if lines is not None:
        trailing = data.endswith(b"\n")
        parts = (data[:-1] if trailing else data).split(b"\n") if data else []
        kept = parts[-lines:] if lines > 0 else []
        data = b"\n".join(kept) + (b"\n" if trailing and kept else b"")
    if limit_bytes is not None and len(data) > limit_bytes:
        data = data[len(data) - limit_bytes :]
    return data


def termination_message(message_file: bytes, log: bytes, policy: str, exit_code: int) -> str:
    """The ``terminated.message`` the kubelet would report.

    The file's content (at most 4096 bytes); with ``FallbackToLogsOnError``, when the file is
    empty and the container failed, the last 80 lines of its log, at most 2048 bytes.
    """
    data = message_file[:MAX_MESSAGE_BYTES]
    if not data and policy == "FallbackToLogsOnError" and exit_code != 0:
        data = tail(log, FALLBACK_LINES, FALLBACK_BYTES)
    return data.decode("utf-8", "replace")
