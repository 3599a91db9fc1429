"""Downward API field paths (``metadata.labels['app']``, ``status.podIP``...) against a pod.

The pod is the API object as a dict (camelCase keys, as the API server sends it). The runner
passes the addresses it assigned, because the pod's status may not carry them yet when the
first container starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class FieldPathError(ValueError):
    """The field path is not one the downward API supports."""


def format_map(values: Mapping[str, str]) -> str:
    """``key="value"`` lines, sorted by key: the downward API's file format for maps."""
    return "\n".join(f"{key}={json.dumps(values[key])}" for key in sorted(values))


def resolve(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    """The value of ``path`` for ``pod``; a missing label or annotation is the empty string."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple: dict[str, str] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".", 1)[1]) or {})
    raise FieldPathError(f"unsupported fieldPath: {path!r}")
