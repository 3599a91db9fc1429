"""One training run, from settings to a written artifact and its result document.

The steps, in order: read the dataset (and digest its bytes), get the schema, validate,
split, fit, evaluate on the held-out split, compute the reference statistics, serialise
everything in memory, and only then write the artifact directory. Every failure before the
last step leaves the output directory untouched.
"""

import logging
from pathlib import Path

from modelops import storage
from modelops.api.artifact import (
    MAX_TERMINATION_MESSAGE_BYTES,
    MODEL_FILE,
    REFERENCE_FILE,
    LinearModel,
    ResultArtifact,
    ResultCode,
    ResultDataset,
    TrainingFailure,
    TrainingResult,
    dump_document,
    manifest_bytes,
    sha256_digest,
)
from modelops.runtimes.trainer.dataset import read_csv
from modelops.runtimes.trainer.errors import DatasetRefusedError, TrainerError
from modelops.runtimes.trainer.linear import fit, predict_labels, predict_scores
from modelops.runtimes.trainer.metrics import classification_metrics, regression_metrics
from modelops.runtimes.trainer.output import write_artifact
from modelops.runtimes.trainer.reference import reference_stats
from modelops.runtimes.trainer.schema import complete, infer_schema, load_schema
from modelops.runtimes.trainer.settings import TrainerSettings
from modelops.runtimes.trainer.split import split
from modelops.runtimes.trainer.validation import Table, validate

logger = logging.getLogger(__name__)


def train(settings: TrainerSettings) -> TrainingResult:
    """Run the whole training; return the result to report.

    Raises `DatasetRefusedError` when the data breaks its schema, `TrainerError` for any other
    failure that has a one-line explanation.
    """
    fetch_dataset(settings.dataset_uri, settings.dataset)
    try:
        data = settings.dataset.read_bytes()
    except OSError as error:
        raise TrainerError(f"cannot read dataset {settings.dataset}: {error.strerror}") from None
    dataset_digest = sha256_digest(data)
    if settings.dataset_digest is not None and dataset_digest != settings.dataset_digest:
        raise DatasetRefusedError.one(
            f"the file has digest {dataset_digest}, expected {settings.dataset_digest}", "digest"
        )
    table = read_csv(data)
    logger.info(
        "Read dataset %s: %d rows, %d columns, %s",
        settings.dataset,
        len(table.rows),
        len(table.header),
        dataset_digest,
    )
    declared = load_schema(settings.dataset_schema) if settings.dataset_schema else None
    schema = complete(declared or infer_schema(table), table)
    validated = validate(table, schema)
    logger.info(
        "Validated dataset against the schema: %d features, %s target %s",
        len(schema.features),
        schema.task,
        schema.target,
    )

    labels = validated.categorical[schema.target] if schema.task == "classification" else None
    train_rows, test_rows = split(labels, validated.rows, settings.test_fraction, settings.seed)
    train_split, test_split = validated.take(train_rows), validated.take(test_rows)
    model = fit(schema, train_split, settings.hyperparameters)
    metrics = evaluate(model, test_split)
    logger.info(
        "Trained %s model on %d rows, evaluated on %d held-out rows: %s",
        schema.task,
        train_split.rows,
        test_split.rows,
        " ".join(f"{name}={value:.4f}" for name, value in sorted(metrics.items())),
    )
    missing = [name for name in settings.required_metrics if name not in metrics]
    if missing:
        raise TrainerError(
            f"required metrics not computed: {', '.join(missing)} "
            f"(computed: {', '.join(sorted(metrics))})"
        )

    reference = reference_stats(model, train_split, settings.hyperparameters.bins)
    files = {MODEL_FILE: dump_document(model), REFERENCE_FILE: dump_document(reference)}
    manifest = manifest_bytes(files)
    output_uri = settings.resolved_output_uri
    result = TrainingResult(
        artifact=ResultArtifact(
            uri=output_uri, digest=sha256_digest(manifest), format=model.format
        ),
        metrics=metrics,
        reference_stats=f"{output_uri}/{REFERENCE_FILE}",
        dataset=ResultDataset(uri=settings.resolved_dataset_uri, digest=dataset_digest),
        code=ResultCode(revision=settings.code_revision),
    )
    # Checked before writing: an artifact whose result cannot be reported would be an orphan.
    result_message(result)
    write_artifact(settings.output_dir, files, manifest)
    logger.info("Wrote artifact %s to %s", result.artifact.digest, settings.output_dir)
    upload_output(settings.output_dir, output_uri)
    return result


def fetch_dataset(uri: str | None, path: Path, settings: storage.S3Settings | None = None) -> None:
    """Download an ``s3://`` dataset to ``path`` (where the trainer reads it) unless it is there
    already; any other URI names a file that is mounted. ``settings``: this process's
    environment's unless given."""
    if uri is None or not storage.is_s3(uri) or path.exists():
        return
    try:
        storage.download_file(uri, path, settings or storage.S3Settings.from_env())
    except storage.StorageError as error:
        raise TrainerError(str(error)) from None
    logger.info("Downloaded dataset %s to %s", uri, path)


def upload_output(directory: Path, uri: str) -> None:
    """Upload the artifact directory to an ``s3://`` output (the manifest last)."""
    if not storage.is_s3(uri):
        return
    try:
        storage.upload_artifact(directory, uri, storage.S3Settings.from_env())
    except storage.StorageError as error:
        raise TrainerError(str(error)) from None
    logger.info("Uploaded artifact %s to %s", directory, uri)


def evaluate(model: LinearModel, test: Table) -> dict[str, float]:
    """The metrics of `model` on the held-out rows (see `modelops.runtimes.trainer.metrics`)."""
    if model.classes is None:
        return regression_metrics(test.numeric[model.target], predict_scores(model, test)[:, 0])
    return classification_metrics(
        test.categorical[model.target],
        predict_labels(model, test),
        predict_scores(model, test),
        model.classes,
    )


def result_message(result: TrainingResult) -> bytes:
    """The termination message of a successful run. Raises `TrainerError` if it is too long."""
    message = dump_document(result)
    if len(message) > MAX_TERMINATION_MESSAGE_BYTES:
        raise TrainerError(
            f"the training result is {len(message)} bytes, more than the "
            f"{MAX_TERMINATION_MESSAGE_BYTES} a termination message holds; shorten the URIs"
        )
    return message


def failure_message(error: str) -> bytes:
    """The termination message of a failed run: `error` on one line, cut to fit the limit."""
    text = " ".join(error.split())
    message = dump_document(TrainingFailure(error=text))
    while len(message) > MAX_TERMINATION_MESSAGE_BYTES:
        # JSON escaping can make a character longer than one byte, so cut by the overshoot
        # and measure again rather than computing the cut once.
        text = text[: len(text) - (len(message) - MAX_TERMINATION_MESSAGE_BYTES) - 1] + "…"
        message = dump_document(TrainingFailure(error=text))
    return message
