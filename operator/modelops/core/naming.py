"""The one place that derives the names of objects modelops creates.

Child names are built from parent names, and Kubernetes limits what they may be: a Service
name is an RFC 1035 label (at most 63 characters, starting with a letter), a Job name ends up
in a label value (at most 63), label values are at most 63. The name limits of the kinds are
chosen so that every derivation below fits without truncation, and the CRDs enforce them at
admission (``modelops.api.meta`` holds the numbers):

==========================  ==========================================  ==================
derived name                from                                        longest
==========================  ==========================================  ==================
stable Service              ``<model>``                                 40
ModelVersion                ``<model>-<version>``                       40 + 1 + 22 = 63
Deployment and Service of   ``<model>-<version>``                       63
a served version
Job of a TrainingRun        ``<training run>``                          63
retrain TrainingRun         ``<model>-retrain-<YYYYMMDDhhmmss>``        40 + 9 + 14 = 63
default version of a run    ``<training run>`` without ``<model>-``     22, hashed if longer
==========================  ==========================================  ==================

Model names are at most 40 characters and start with a letter, versions at most 22
characters, TrainingRun and DriftPolicy names at most 63. Only the default version of a run
can be too long (a run name is up to 63 characters); :func:`fit` shortens it deterministically
with a hash suffix, so the same run always gets the same version.

One residual clash is not preventable at admission: a Model named ``a-b`` and a Model ``a``
with a served version ``b`` in the same namespace would both want a Service ``a-b``. Code that
applies a child must check its owner before taking it over.
"""

import hashlib
from datetime import UTC, datetime

from modelops.api import DNS_LABEL_MAX_LENGTH, VERSION_MAX_LENGTH

HASH_LENGTH = 8
"""Hex digits of the sha256 suffix :func:`fit` appends; 32 bits make a clash between two
truncated names of one model practically impossible."""

RETRAIN_INFIX = "retrain"


def fit(name: str, limit: int) -> str:
    """Return ``name`` if it has at most ``limit`` characters, else a shortened form.

    The shortened form is a prefix of ``name`` and ``-`` and the first :data:`HASH_LENGTH` hex
    digits of the sha256 of the whole ``name``, exactly ``limit`` characters or fewer (a
    trailing ``-`` of the prefix is dropped). It is deterministic and stays a valid DNS label
    when ``name`` is one. Raises ``ValueError`` if ``limit`` leaves no room for a prefix.
    """
    if len(name) <= limit:
        return name
    room = limit - HASH_LENGTH - 1
    if room < 1:
        raise ValueError(f"limit {limit} is too small for a hash suffix")
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    return f"{name[:room].rstrip('-')}-{digest}"


def model_version_name(model: str, version: str) -> str:
    """Name of the ModelVersion for ``version`` of ``model``: ``<model>-<version>``.

    Admission requires exactly this name, so it is also how to find a version's object.
    """
    return f"{model}-{version}"


def serving_name(model: str, version: str) -> str:
    """Name of the Deployment and the Service that serve ``version`` of ``model``.

    The same as the ModelVersion's name, so ``kubectl get deploy,svc,mv iris-v3`` shows the
    version and everything serving it.
    """
    return model_version_name(model, version)


def stable_service_name(model: str) -> str:
    """Name of the Service that always reaches the served versions of ``model``: the Model's
    own name, so clients call ``http://<model>.<namespace>``."""
    return model


def job_name(training_run: str) -> str:
    """Name of the Job that runs ``training_run``: the same name (admission keeps it a DNS
    label of at most 63 characters, which a Job name must be)."""
    return training_run


def default_version(model: str, training_run: str) -> str:
    """Version registered by a TrainingRun that does not set ``spec.version``.

    The run's name without a leading ``<model>-`` (run ``iris-7`` of model ``iris`` registers
    version ``7``, ModelVersion ``iris-7``), else the whole run name; :func:`fit` to
    ``VERSION_MAX_LENGTH`` characters.
    """
    return fit(training_run.removeprefix(f"{model}-"), VERSION_MAX_LENGTH)


def retrain_run_name(model: str, at: datetime) -> str:
    """Name of the TrainingRun a retrain action starts for ``model`` at ``at``.

    ``<model>-retrain-<YYYYMMDDhhmmss>`` in UTC: readable, sorted by time, and unique because
    a policy's cooldown keeps two retrains of one model apart. Its default version is
    ``retrain-<YYYYMMDDhhmmss>``, exactly 22 characters. Raises ``ValueError`` for a naive
    ``at``.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    stamp = at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return fit(f"{model}-{RETRAIN_INFIX}-{stamp}", DNS_LABEL_MAX_LENGTH)


def artifact_path(model: str, training_run: str) -> str:
    """Directory inside the output claim that a run writes to when ``spec.output.pvc.path``
    is unset: ``<model>/<training run>``, so runs never overwrite each other."""
    return f"{model}/{training_run}"
