"""Importing this module registers every kopf handler of the operator."""

from modelops.handlers import events, startup

__all__ = ["events", "startup"]
