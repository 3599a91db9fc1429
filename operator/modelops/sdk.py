"""The training SDK: what a training script of your own calls to hand its model to modelops.

A TrainingRun can run any image and command. The operator expects the same two things from
every trainer (docs/contracts.md): an artifact directory (the model file, ``model.json``,
``reference.json`` with the reference statistics drift is measured against, ``manifest.json``
with every file's digest) in the output directory, and the training result in the container's
termination message. Three calls do all of it::

    from modelops import sdk

    run = sdk.context()                               # dataset, output dir, hyperparameters
    X, y = load(run.dataset)                          # your data, your framework
    model = fit(X, y)
    artifact = sdk.write_artifact(
        run.output_dir, model=to_onnx(model, X).SerializeToString(), task="classification",
        target="species", features=X, classes=model.classes_,
    )
    sdk.report(artifact, run, metrics={"accuracy": accuracy})

``write_artifact`` computes the reference statistics from the training features exactly as the
reference trainer does, so drift detection works the same for every model. ``fail`` reports a
refused run in one line. The SDK needs numpy and pydantic only (both come with
``modelops-operator``); the server needs onnxruntime to serve ``onnx/v1``.
"""

import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

import modelops
from modelops import storage
from modelops.api import artifact as contract
from modelops.runtimes.trainer.output import write_artifact as _write_files
from modelops.runtimes.trainer.output import write_termination_log
from modelops.runtimes.trainer.reference import numeric_reference
from modelops.runtimes.trainer.run import (
    failure_message,
    fetch_dataset,
    result_message,
    upload_output,
)

__all__ = ["Artifact", "TrainingContext", "context", "fail", "report", "write_artifact"]

DEFAULT_BINS = 20
"""Quantile bins of a numeric feature's reference histogram (the reference trainer's default)."""


@dataclass(frozen=True)
class TrainingContext:
    """What the operator tells a training container, read from ``MODELOPS_TRAINER_*``.

    ``dataset`` is the mounted dataset file, ``output_dir`` where the artifact goes,
    ``output_uri`` how the operator addresses it (``pvc://claim/path``); ``hyperparameters`` is
    the TrainingRun's ``spec.hyperparameters`` as given.
    """

    dataset: Path
    output_dir: Path
    dataset_uri: str
    dataset_digest: str | None = None
    output_uri: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    schema: Mapping[str, Any] | None = None
    """The TrainingRun's ``spec.dataset.schema`` (target, task, columns), if it has one."""
    code_revision: str = modelops.__version__
    termination_log: Path = Path("/dev/termination-log")


def context(environ: Mapping[str, str] | None = None) -> TrainingContext:
    """Read the training context the operator put in the environment.

    Raises ``KeyError`` naming the variable when the operator's two required ones,
    ``MODELOPS_TRAINER_DATASET`` and ``MODELOPS_TRAINER_OUTPUT_DIR``, are missing (set them by
    hand to run the script outside a cluster).
    """
    env = os.environ if environ is None else environ

    def need(name: str) -> str:
        if name not in env:
            raise KeyError(f"{name} is not set: the operator sets it in a TrainingRun's pod")
        return env[name]

    dataset = Path(need("MODELOPS_TRAINER_DATASET"))
    # An s3:// dataset is downloaded to that path first (modelops.storage).
    uri = env.get("MODELOPS_TRAINER_DATASET_URI") or None
    fetch_dataset(uri, dataset, storage.S3Settings.from_env(env))
    raw = env.get("MODELOPS_TRAINER_HYPERPARAMETERS", "").strip()
    hyperparameters = json.loads(raw) if raw else {}
    if not isinstance(hyperparameters, dict):
        raise ValueError("MODELOPS_TRAINER_HYPERPARAMETERS must be a JSON object")
    schema = _json_or_file(env.get("MODELOPS_TRAINER_SCHEMA", "").strip())
    return TrainingContext(
        dataset=dataset,
        output_dir=Path(need("MODELOPS_TRAINER_OUTPUT_DIR")),
        dataset_uri=env.get("MODELOPS_TRAINER_DATASET_URI") or dataset.resolve().as_uri(),
        dataset_digest=env.get("MODELOPS_TRAINER_DATASET_DIGEST") or None,
        output_uri=env.get("MODELOPS_TRAINER_OUTPUT_URI") or None,
        hyperparameters=hyperparameters,
        schema=schema,
        code_revision=env.get("MODELOPS_TRAINER_CODE_REVISION") or modelops.__version__,
        termination_log=Path(env.get("MODELOPS_TRAINER_TERMINATION_LOG") or "/dev/termination-log"),
    )


@dataclass(frozen=True)
class Artifact:
    """A written artifact: its directory, digest (of ``manifest.json``) and format."""

    directory: Path
    digest: str
    format: str


def write_artifact(
    directory: Path | str,
    *,
    model: bytes,
    task: Literal["classification", "regression"],
    target: str,
    features: Any,
    feature_names: Sequence[str] | None = None,
    categorical: Collection[str] = (),
    classes: Iterable[object] | None = None,
    outputs: contract.OnnxOutputs | None = None,
    opset: int | None = None,
    bins: int = DEFAULT_BINS,
) -> Artifact:
    """Write an ``onnx/v1`` artifact: the graph, ``model.json``, ``reference.json``, manifest.

    ``model`` is the serialised ONNX graph (``onnx_model.SerializeToString()``). ``features``
    is the training data the model learnt from, without the target: a pandas DataFrame, a
    mapping of column name to values, or a 2-D array with ``feature_names``. Its columns are
    the model's inputs, in order; those named in ``categorical`` are categories (text), the
    others numbers (NaN counts as missing). ``classes`` are the classifier's labels in the order
    of its probability columns (``estimator.classes_``), kept as given. ``outputs`` names the
    graph's label and probability (or prediction) outputs when they are not the first two.

    Files are written atomically and the manifest last; a directory that already holds a
    different artifact is refused, so a registered version can never change.
    """
    columns = _columns(features, feature_names)
    unknown = sorted(set(categorical) - set(columns))
    if unknown:
        raise ValueError(f"categorical names no feature: {', '.join(unknown)}")
    labels = None if classes is None else [contract.label_text(value) for value in classes]
    document = contract.OnnxModel(
        task=task,
        target=target,
        classes=labels,
        outputs=outputs or contract.OnnxOutputs(),
        opset=opset,
    )
    reference = reference_stats(columns, categorical, bins)
    files = {
        document.file: bytes(model),
        contract.MODEL_FILE: contract.dump_document(document),
        contract.REFERENCE_FILE: contract.dump_document(reference),
    }
    manifest = contract.manifest_bytes(files)
    _write_files(Path(directory), files, manifest)
    return Artifact(Path(directory), contract.sha256_digest(manifest), document.format)


def reference_stats(
    columns: Mapping[str, npt.NDArray[Any]], categorical: Collection[str], bins: int = DEFAULT_BINS
) -> contract.ReferenceStats:
    """The reference statistics of training columns, as the reference trainer computes them."""
    rows = {len(values) for values in columns.values()}
    if len(rows) != 1:
        raise ValueError("every feature needs the same number of rows")
    references: list[contract.FeatureReference] = []
    for name, values in columns.items():
        if name in categorical:
            texts = ["" if _missing(value) else contract.label_text(value) for value in values]
            categories = sorted({text for text in texts if text})
            references.append(
                contract.CategoricalReference(
                    name=name,
                    categories=categories,
                    counts=[texts.count(category) for category in categories],
                    missing=texts.count(""),
                )
            )
        else:
            try:
                numbers = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"feature {name!r} is not numeric: name it in categorical"
                ) from None
            references.append(numeric_reference(name, numbers, bins))
    return contract.ReferenceStats(rows=rows.pop(), features=references)


def report(
    artifact: Artifact,
    run: TrainingContext,
    *,
    metrics: Mapping[str, float],
    dataset_digest: str | None = None,
) -> contract.TrainingResult:
    """Write the training result to the termination message: the operator registers the
    ModelVersion from it (artifact URI and digest, metrics, dataset, code revision). With an
    ``s3://`` output (``run.output_uri``) the artifact is uploaded first, manifest last.

    The dataset digest is that of the file at ``run.dataset`` unless given; a TrainingRun that
    pins ``spec.dataset.digest`` is refused when they differ, as with the reference trainer.
    """
    digest = dataset_digest or contract.sha256_digest(run.dataset.read_bytes())
    if run.dataset_digest is not None and digest != run.dataset_digest:
        raise ValueError(f"the dataset has digest {digest}, the run expects {run.dataset_digest}")
    uri = (run.output_uri or artifact.directory.resolve().as_uri()).rstrip("/")
    result = contract.TrainingResult(
        artifact=contract.ResultArtifact(uri=uri, digest=artifact.digest, format=artifact.format),
        metrics={name: float(value) for name, value in metrics.items()},
        reference_stats=f"{uri}/{contract.REFERENCE_FILE}",
        dataset=contract.ResultDataset(uri=run.dataset_uri, digest=digest),
        code=contract.ResultCode(revision=run.code_revision),
    )
    message = result_message(result)
    upload_output(artifact.directory, uri)  # an s3:// output: uploaded before it is reported
    write_termination_log(run.termination_log, message)
    return result


def fail(run: TrainingContext, error: str) -> None:
    """Report a failed run: the TrainingRun shows ``error`` (one line) in its conditions."""
    write_termination_log(run.termination_log, failure_message(error))


def _json_or_file(value: str) -> dict[str, Any] | None:
    # The operator passes a schema as JSON; a person may pass the path of a JSON file.
    if not value:
        return None
    document = json.loads(value if value.startswith("{") else Path(value).read_text())
    if not isinstance(document, dict):
        raise ValueError("MODELOPS_TRAINER_SCHEMA must be a JSON object")
    return document


def _columns(features: Any, names: Sequence[str] | None) -> dict[str, npt.NDArray[Any]]:
    if hasattr(features, "columns") and hasattr(features, "__getitem__") and names is None:
        return {str(name): np.asarray(features[name]) for name in features.columns}
    if isinstance(features, Mapping):
        return {str(name): np.asarray(values) for name, values in features.items()}
    matrix = np.asarray(features)
    if matrix.ndim != 2:
        raise ValueError("features must be 2-D: rows by features")
    if names is None:
        names = [f"x{i}" for i in range(matrix.shape[1])]
    if len(names) != matrix.shape[1]:
        raise ValueError(f"{len(names)} feature names for {matrix.shape[1]} columns")
    return {name: matrix[:, i] for i, name in enumerate(names)}


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
