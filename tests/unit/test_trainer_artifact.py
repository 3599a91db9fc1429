"""The artifact directory and the training result the trainer writes, and the verification
helpers of `modelops.api.artifact` that the operator and the server use on them.

Runs `train()` in-process against the bundled iris data, writing into `tmp_path` only.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from modelops import datasets
from modelops.api.artifact import (
    MAX_TERMINATION_MESSAGE_BYTES,
    ArtifactIntegrityError,
    LinearModel,
    Manifest,
    NumericReference,
    ReferenceStats,
    TrainingFailure,
    TrainingResult,
    canonical_json,
    manifest_bytes,
    parse_termination_message,
    verify_artifact,
)
from modelops.runtimes.trainer.errors import TrainerError
from modelops.runtimes.trainer.run import failure_message, result_message, train
from modelops.runtimes.trainer.settings import TrainerSettings

FILES = ["manifest.json", "model.json", "reference.json"]


@pytest.fixture(autouse=True)
def no_trainer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, not from variables of the machine running it."""
    for name in [n for n in os.environ if n.startswith("MODELOPS_TRAINER_")]:
        monkeypatch.delenv(name)


def settings(tmp_path: Path, output: str = "out", **changes: object) -> TrainerSettings:
    values: dict[str, object] = {
        "dataset": datasets.path("iris.csv"),
        "dataset_schema": str(datasets.path("iris.schema.json")),
        "output_dir": tmp_path / output,
        "output_uri": f"pvc://models/iris/{output}",
        "termination_log": tmp_path / "termination-log",
    }
    return TrainerSettings(**(values | changes))  # type: ignore[arg-type]


def contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


Trained = tuple[TrainingResult, Path]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    tmp_path = tmp_path_factory.mktemp("trained")
    return train(settings(tmp_path)), tmp_path / "out"


def test_artifact_directory_holds_exactly_the_contract_files(trained: Trained) -> None:
    _, directory = trained
    assert sorted(contents(directory)) == FILES
    manifest = json.loads((directory / "manifest.json").read_bytes())
    assert manifest == {
        "files": {
            name: "sha256:" + hashlib.sha256((directory / name).read_bytes()).hexdigest()
            for name in ["model.json", "reference.json"]
        }
    }


def test_files_are_canonical_json(trained: Trained) -> None:
    _, directory = trained
    for name, data in contents(directory).items():
        assert canonical_json(json.loads(data)) == data, name


def test_artifact_digest_is_the_manifest_hash(trained: Trained) -> None:
    result, directory = trained
    manifest = (directory / "manifest.json").read_bytes()
    assert result.artifact.digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert verify_artifact(directory, result.artifact.digest).files.keys() == {
        "model.json",
        "reference.json",
    }


def test_artifact_files_load_as_their_models(trained: Trained) -> None:
    _, directory = trained
    model = LinearModel.model_validate_json((directory / "model.json").read_bytes())
    assert model.classes == ["setosa", "versicolor", "virginica"]
    assert [f.name for f in model.features] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    reference = ReferenceStats.model_validate_json((directory / "reference.json").read_bytes())
    assert reference.rows == 120  # the training split
    for feature in reference.features:
        assert isinstance(feature, NumericReference)
        assert sum(feature.counts) == reference.rows


def test_result_document_matches_the_contract(trained: Trained, tmp_path: Path) -> None:
    result, _ = trained
    document = json.loads(result_message(result))
    assert document == {
        "artifact": {
            "uri": "pvc://models/iris/out",
            "digest": result.artifact.digest,
            "format": "modelops-linear/v1",
        },
        "metrics": pytest.approx({"accuracy": 0.9, "f1": 0.8997, "auc": 0.99}, abs=1e-4),
        "referenceStats": "pvc://models/iris/out/reference.json",
        "dataset": {
            "uri": datasets.path("iris.csv").resolve().as_uri(),
            "digest": "sha256:"
            + hashlib.sha256(datasets.path("iris.csv").read_bytes()).hexdigest(),
        },
        "code": {"revision": "0.1.0"},
    }
    assert parse_termination_message(result_message(result).decode()) == result


def test_bundled_dataset_digests_match_the_readme() -> None:
    readme = datasets.path("README.md").read_text()
    for name in ["iris.csv", "diabetes.csv"]:
        assert hashlib.sha256(datasets.path(name).read_bytes()).hexdigest() in readme


def test_same_seed_gives_byte_identical_artifacts(tmp_path: Path) -> None:
    first = train(settings(tmp_path, "first"))
    second = train(settings(tmp_path, "second", output_uri="pvc://models/iris/first"))
    assert contents(tmp_path / "first") == contents(tmp_path / "second")
    assert result_message(first) == result_message(second)


def test_other_seed_gives_another_artifact(tmp_path: Path) -> None:
    assert train(settings(tmp_path, "a")).artifact.digest != (
        train(settings(tmp_path, "b", seed=1)).artifact.digest
    )


def test_rerun_into_the_same_directory_is_idempotent(tmp_path: Path) -> None:
    first = train(settings(tmp_path))
    (tmp_path / "out" / "model.json").write_bytes(b"damaged by a crash")
    second = train(settings(tmp_path))
    assert second == first
    verify_artifact(tmp_path / "out", first.artifact.digest)
    assert sorted(contents(tmp_path / "out")) == FILES  # no temporary files left behind


def test_a_different_artifact_is_never_overwritten(tmp_path: Path) -> None:
    train(settings(tmp_path))
    before = contents(tmp_path / "out")
    with pytest.raises(TrainerError, match="already holds a different artifact"):
        train(settings(tmp_path, seed=7))
    assert contents(tmp_path / "out") == before


def test_an_oversized_result_fails_before_writing(tmp_path: Path) -> None:
    long_uri = "pvc://models/" + "x" * MAX_TERMINATION_MESSAGE_BYTES
    with pytest.raises(TrainerError, match=r"more than the 4096 a termination message holds"):
        train(settings(tmp_path, output_uri=long_uri))
    assert not (tmp_path / "out").exists()


def test_required_metrics_must_be_computed(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match=r"required metrics not computed: rmse \(computed: "):
        train(settings(tmp_path, required_metrics="accuracy, rmse"))
    assert not (tmp_path / "out").exists()


def test_failure_message_is_one_line_within_the_limit() -> None:
    message = failure_message('column "é":\nbad ' + '"quoted" ' * 2000)
    assert len(message) <= MAX_TERMINATION_MESSAGE_BYTES
    failure = parse_termination_message(message.decode())
    assert isinstance(failure, TrainingFailure)
    assert failure.error.startswith('column "é": bad "quoted"')
    assert failure.error.endswith("…")


@pytest.mark.parametrize("name", ["model.json", "reference.json"])
def test_verification_detects_a_tampered_file(trained: Trained, tmp_path: Path, name: str) -> None:
    result, directory = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    for file_name, data in contents(directory).items():
        (copy / file_name).write_bytes(data)
    tampered = (copy / name).read_bytes().replace(b"[", b"[ ", 1)
    (copy / name).write_bytes(tampered)
    with pytest.raises(ArtifactIntegrityError, match=f"^{name} has digest sha256:"):
        verify_artifact(copy, result.artifact.digest)
    (copy / name).unlink()
    with pytest.raises(ArtifactIntegrityError, match=f"^{name} is missing"):
        verify_artifact(copy, result.artifact.digest)


def test_verification_detects_a_replaced_manifest(trained: Trained, tmp_path: Path) -> None:
    result, directory = trained
    for file_name, data in contents(directory).items():
        (tmp_path / file_name).write_bytes(data)
    # A consistent forgery: new model and a manifest that matches it, but not the digest.
    (tmp_path / "model.json").write_bytes(b"{}")
    forged = manifest_bytes(
        {"model.json": b"{}", "reference.json": (tmp_path / "reference.json").read_bytes()}
    )
    (tmp_path / "manifest.json").write_bytes(forged)
    with pytest.raises(
        ArtifactIntegrityError, match=r"^manifest.json has digest sha256:\w+, expected"
    ):
        verify_artifact(tmp_path, result.artifact.digest)


@pytest.mark.parametrize("name", ["../model.json", "manifest.json", "a/b", ""])
def test_manifest_lists_plain_file_names_only(name: str) -> None:
    with pytest.raises(ValidationError, match="manifest cannot list"):
        Manifest(files={name: "sha256:" + "0" * 64})


MODEL: dict[str, Any] = {
    "task": "classification",
    "target": "y",
    "features": [
        {"name": "x", "type": "numeric"},
        {"name": "c", "type": "categorical", "categories": ["p", "q"]},
    ],
    "classes": ["a", "b"],
    "mean": [0.0],
    "scale": [1.0],
    "weights": [[0.0, 0.0]] * 3,
    "bias": [0.0, 0.0],
}


def test_a_consistent_model_validates() -> None:
    assert LinearModel.model_validate(MODEL).encoded_width == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": [[0.0, 0.0]] * 2}, "one row per encoded column"),
        ({"bias": [0.0]}, "one entry per output"),
        ({"mean": []}, "one entry per numeric feature"),
        ({"scale": [0.0]}, "every scale must be positive"),
        ({"classes": None}, "at least two classes"),
        ({"classes": ["a", "a"]}, "duplicate classes: a"),
        ({"format": "other/v1"}, "format"),
        ({"weights": [[float("nan"), 0.0]] * 3}, "finite number"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_inconsistent_models_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LinearModel.model_validate(MODEL | change)


def test_reference_buckets_are_checked() -> None:
    with pytest.raises(ValidationError, match="len\\(binEdges\\) \\+ 1 counts"):
        NumericReference(name="x", bin_edges=[1.0, 2.0], counts=[1, 2])
    with pytest.raises(ValidationError, match="strictly ascending"):
        NumericReference(name="x", bin_edges=[2.0, 1.0], counts=[0, 1, 2])
