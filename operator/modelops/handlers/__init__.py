"""The only package that imports kopf: thin wiring from watch events to reconciles.

Importing ``modelops.handlers.wiring`` registers every handler with kopf's default registry.
"""
