"""Reading the API server's audit log (JSON lines, Metadata level): who asked for what, when.

The harness's cluster writes one line per request stage; with ``audit_reads`` it records reads
(get, list, watch) as well as writes. A watch has two stages (ResponseStarted and
ResponseComplete), so requests are counted once by ``auditID``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Request:
    """One audited request."""

    time: float
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    agent: str
    code: int

    @property
    def write(self) -> bool:
        return self.verb in WRITES

    @property
    def what(self) -> str:
        """``verb resource[/subresource]``, e.g. ``patch trainingruns/status``."""
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub}"


def offset(path: Path) -> int:
    """Where the log ends now: read from here to see only what comes next."""
    return path.stat().st_size if path.exists() else 0


def parse(lines: Iterable[str]) -> list[Request]:
    """Requests from audit lines, each once (the first stage seen), in log order."""
    seen: set[str] = set()
    out = []
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        audit_id = event.get("auditID", "")
        if audit_id in seen:
            continue
        seen.add(audit_id)
        ref = event.get("objectRef")
        if ref is None:  # a non-resource URL: /api, /apis/..., /version (discovery)
            ref = {"resource": "(discovery)"}
        out.append(
            Request(
                time=datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp(),
                verb=event.get("verb", ""),
                resource=ref.get("resource", ""),
                subresource=ref.get("subresource", ""),
                namespace=ref.get("namespace", ""),
                name=ref.get("name", ""),
                agent=event.get("userAgent", ""),
                code=int((event.get("responseStatus") or {}).get("code", 0)),
            )
        )
    return out


def read(path: Path, start: int, end: int | None = None) -> tuple[list[Request], int]:
    """Requests logged between byte offsets ``start`` and ``end`` (default: now), and the
    offset after the last whole line read (a line being written is left for the next read)."""
    if start > offset(path):
        # Counting by offset needs one file: the cluster must not rotate it (audit_reads).
        raise RuntimeError(f"{path} is shorter than offset {start}: it was rotated")
    with path.open("rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(max(0, end - start))
    whole = data[: data.rfind(b"\n") + 1]
    return parse(whole.decode().splitlines()), start + len(whole)


def by_agent(requests: Iterable[Request], prefixes: Sequence[str]) -> list[Request]:
    """The requests whose user agent starts with one of ``prefixes``."""
    return [r for r in requests if r.agent.startswith(tuple(prefixes))]


def tally(requests: Iterable[Request]) -> dict[str, int]:
    """Requests by ``verb resource``, most frequent first."""
    return dict(Counter(r.what for r in requests).most_common())


def counts(requests: Sequence[Request]) -> dict[str, int]:
    """Totals: all requests, writes, and reads by verb (``watch`` counts watches opened)."""
    verbs = Counter(r.verb for r in requests)
    return {
        "requests": len(requests),
        "writes": sum(1 for r in requests if r.write),
        "get": verbs["get"],
        "list": verbs["list"],
        "watch": verbs["watch"],
    }
