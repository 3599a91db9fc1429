"""The reference model server: ``python -m modelops.runtimes.server`` (docs/server.md).

A separate program, not part of the operator: it serves one version of one model over the Open
Inference Protocol v2, verifies the artifact digest before it reports ready, and exports one
histogram per input feature with the training reference bins (the drift input). It imports
only :mod:`modelops.api` from the rest of the project.
"""
