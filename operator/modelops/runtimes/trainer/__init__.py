"""The reference trainer: a separate program, `python -m modelops.runtimes.trainer`.

It validates a CSV dataset against its declared schema, trains a deterministic linear model
(softmax regression or ridge regression, numpy only), evaluates it on a held-out split and
writes the artifact directory and the training result specified in `docs/contracts.md`.
Settings: `modelops.runtimes.trainer.settings`; the steps: `modelops.runtimes.trainer.run`.

It imports `modelops.api` and its own modules only, never the operator's.
"""
