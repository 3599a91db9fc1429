"""What ``/proc`` says about a process: CPU time, memory, threads, bytes read, connections."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command: state is field 3 of stat(5); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def status(pid: int) -> dict[str, int]:
    """Numeric fields of /proc/<pid>/status (memory in KiB)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident set now, peak resident set) in MiB."""
    s = status(pid)
    return s["VmRSS"] / 1024, s["VmHWM"] / 1024


def threads(pid: int) -> int:
    return status(pid)["Threads"]


def bytes_read(pid: int) -> int:
    """Bytes the process has read through read(2)-like calls, sockets included (``rchar``)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise ValueError(f"no rchar in /proc/{pid}/io")


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of the process to 127.0.0.1:``port`` (its open watches and
    pooled request connections to the API server)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if cols[3] == "01" and remote_port == port and cols[9] in inodes:
                count += 1
    return count
