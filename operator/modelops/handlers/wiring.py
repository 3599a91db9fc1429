"""Importing this module registers every kopf handler and every reconciler of the operator."""

from modelops.handlers import (
    driftpolicy,
    election,
    events,
    model,
    quarantine,
    startup,
    trainingrun,
)

__all__ = [
    "driftpolicy",
    "election",
    "events",
    "model",
    "quarantine",
    "startup",
    "trainingrun",
]
