"""Importing this module registers every kopf handler and every reconciler of the operator."""

from modelops.handlers import events, startup, trainingrun

__all__ = ["events", "startup", "trainingrun"]
