"""Reading and verifying an artifact directory before anything is served from it.

:func:`load_artifact` is the only way the server gets at a model. It refuses a retired
artifact, checks ``manifest.json`` against the expected digest and every listed file against
the manifest, and parses ``model.json`` and ``reference.json`` from the very bytes it hashed, so
nothing read after verification can differ from what was verified. The documents and digest
helpers are the shared contract of :mod:`modelops.api.artifact` (docs/contracts.md). It does
blocking file I/O; the caller runs it in a thread.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from modelops.api import artifact as contract

#: Written by the operator into the artifact directory of a retired version; docs/server.md.
RETIRED_MARKER = contract.RETIRED_MARKER

#: Why an artifact was refused; the ``reason`` label of the load-failure metric.
Reason = Literal[
    "retired",
    "missing_file",
    "unreadable_file",
    "digest_mismatch",
    "invalid_artifact",
    "unsupported_format",
]

# Enough of a RETIRED marker's text to say who retired the version and why, not a whole file.
_MARKER_PREVIEW_BYTES = 256

_D = TypeVar("_D", bound=BaseModel)


class ArtifactError(Exception):
    """The artifact cannot be served; ``reason`` classifies it, the message names the file."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: its directory, digest and parsed documents.

    ``graph`` holds the verified bytes of the model file an ``onnx/v1`` artifact names (the
    runtime loads the model from these bytes, never from the file again); None for a format
    that keeps the whole model in ``model.json``.
    """

    directory: Path
    digest: str
    model: contract.LinearModel | contract.OnnxModel
    reference: contract.ReferenceStats
    graph: bytes | None = None


_ModelDocument: TypeAdapter[contract.LinearModel | contract.OnnxModel] = TypeAdapter(
    contract.ModelDocument
)


def load_artifact(directory: Path, expected_digest: str) -> Artifact:
    """Verify and parse the artifact in ``directory``; raise :class:`ArtifactError` if refused.

    Refuses, in this order: a directory holding a ``RETIRED`` marker; a ``manifest.json`` that
    is missing or whose digest is not ``expected_digest``; a manifest that is malformed or does
    not list ``model.json`` and ``reference.json``; any listed file that is missing or whose
    digest differs from the manifest; documents that do not match docs/contracts.md or do not
    fit together (a model feature without reference statistics of the same type, an ``onnx/v1``
    model file the manifest does not list). Files the manifest does not list, the marker among
    them, are not part of the artifact and ignored.
    """
    _refuse_retired(directory)
    manifest_bytes = _read(directory, contract.MANIFEST_FILE)
    try:
        manifest = contract.verify_manifest(manifest_bytes, expected_digest)
    except contract.ArtifactIntegrityError as error:
        matches = contract.sha256_digest(manifest_bytes) == expected_digest
        raise ArtifactError(
            "invalid_artifact" if matches else "digest_mismatch", f"{directory}: {error}"
        ) from None
    for name in (contract.MODEL_FILE, contract.REFERENCE_FILE):
        if name not in manifest.files:
            raise ArtifactError(
                "invalid_artifact", f"{directory}: {contract.MANIFEST_FILE} does not list {name}"
            )
    documents: dict[str, bytes] = {}
    for name in (contract.MODEL_FILE, contract.REFERENCE_FILE):
        documents[name] = _read(directory, name)
        _check_listed(directory, name, contract.sha256_digest(documents[name]), manifest)
    model = _parse_model(documents[contract.MODEL_FILE])
    reference = _parse(contract.ReferenceStats, contract.REFERENCE_FILE, documents)
    graph: bytes | None = None
    if isinstance(model, contract.OnnxModel):
        if model.file not in manifest.files:
            raise ArtifactError(
                "invalid_artifact",
                f"{directory}: {contract.MANIFEST_FILE} does not list {model.file}, the model "
                f"file {contract.MODEL_FILE} names",
            )
        # Read once: the runtime loads exactly the bytes that were hashed.
        graph = _read(directory, model.file)
        _check_listed(directory, model.file, contract.sha256_digest(graph), manifest)
    for name in sorted(manifest.files):
        if name not in documents and not (
            isinstance(model, contract.OnnxModel) and name == model.file
        ):
            _check_listed(directory, name, _hash_file(directory, name), manifest)
    if isinstance(model, contract.LinearModel):
        _check_reference_covers(model, reference)
    return Artifact(
        directory=directory,
        digest=expected_digest,
        model=model,
        reference=reference,
        graph=graph,
    )


def _check_listed(directory: Path, name: str, actual: str, manifest: contract.Manifest) -> None:
    listed = manifest.files[name]
    if actual != listed:
        raise ArtifactError(
            "digest_mismatch",
            f"Artifact file {directory / name} has digest {actual}, "
            f"{contract.MANIFEST_FILE} lists {listed}",
        )


def _parse_model(data: bytes) -> contract.LinearModel | contract.OnnxModel:
    try:
        return _ModelDocument.validate_json(data)
    except ValidationError as error:
        raise ArtifactError(
            "invalid_artifact",
            f"Artifact file {contract.MODEL_FILE} is invalid: {_problems(error)}",
        ) from None


def _refuse_retired(directory: Path) -> None:
    marker = directory / RETIRED_MARKER
    try:
        with marker.open("rb") as stream:
            note = stream.read(_MARKER_PREVIEW_BYTES).decode("utf-8", "replace").strip()
    except FileNotFoundError:
        return
    except OSError as error:
        # A marker that exists but cannot be read still marks the version as retired.
        note = f"unreadable: {error.strerror}"
    detail = f": {note}" if note else ""
    raise ArtifactError("retired", f"Artifact directory {directory} holds {marker.name}{detail}")


def _read(directory: Path, name: str) -> bytes:
    try:
        return (directory / name).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            "missing_file", f"Artifact file {directory / name} does not exist"
        ) from None
    except OSError as error:
        raise ArtifactError(
            "unreadable_file", f"Artifact file {directory / name} cannot be read: {error.strerror}"
        ) from None


def _hash_file(directory: Path, name: str) -> str:
    # Files other than the two documents may be large: hash them without holding them in memory.
    try:
        with (directory / name).open("rb") as stream:
            return "sha256:" + hashlib.file_digest(stream, "sha256").hexdigest()
    except FileNotFoundError:
        raise ArtifactError(
            "missing_file", f"Artifact file {directory / name} does not exist"
        ) from None
    except OSError as error:
        raise ArtifactError(
            "unreadable_file", f"Artifact file {directory / name} cannot be read: {error.strerror}"
        ) from None


def _parse(document: type[_D], name: str, documents: dict[str, bytes]) -> _D:
    try:
        return document.model_validate_json(documents[name])
    except ValidationError as error:
        raise ArtifactError(
            "invalid_artifact", f"Artifact file {name} is invalid: {_problems(error)}"
        ) from None


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(document)'}: {problem['msg']}"
        for problem in error.errors(include_url=False)
    )


def _check_reference_covers(
    model: contract.LinearModel, reference: contract.ReferenceStats
) -> None:
    # The per-feature histograms are the drift input: serving a feature without its reference
    # bins would silently blind drift detection for it.
    types = {feature.name: feature.type for feature in reference.features}
    for feature in model.features:
        if types.get(feature.name) != feature.type:
            raise ArtifactError(
                "invalid_artifact",
                f"Artifact file {contract.REFERENCE_FILE} has no {feature.type} statistics for "
                f"feature {feature.name!r}",
            )
