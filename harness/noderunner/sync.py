"""What the agent does with each pod bound to its node, decided from the pod alone.

The agent keeps a cache of its pods (re-listed every resync period, updated by watch events in
between) and applies ``action_for`` to every cached pod whenever the cache changes, so an
event that was missed is corrected by the next re-list. Pods that leave the cache have their
worker told that they vanished.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Action = Literal["start", "update", "delete", "ignore"]
TERMINAL_PHASES = ("Succeeded", "Failed")


def action_for(pod: Mapping[str, Any], has_worker: bool, finished: bool) -> Action:
    """The agent's action for a pod.

    * ``update``: a worker runs it; hand the worker the new version (deletion included).
    * ``start``: nobody runs it and it is not finished: start a worker.
    * ``delete``: it is finished (or never started) and being deleted: nothing to stop, just
      make the kubelet's final delete.
    * ``ignore``: finished and not being deleted: nothing to do until it is.

    ``finished`` means a worker of this runner already took the pod to its end; a pod whose
    status says Succeeded/Failed counts as finished too (after a runner restart).
    """
    if has_worker:
        return "update"
    deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    done = finished or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES
    if deleting:
        return "delete"
    return "ignore" if done else "start"
