"""Importing this module registers every kopf handler and every reconciler of the operator."""

from modelops.handlers import events, model, startup, trainingrun

__all__ = ["events", "model", "startup", "trainingrun"]
