"""Datasets and artifacts in S3 (``modelops.storage``), against the harness's real S3 server.

The reference trainer and the SDK run as programs with the environment a training pod gets
(``MODELOPS_S3_*`` and the credentials), read an ``s3://`` dataset and upload their artifact;
the serving pod's init step (``python -m modelops.storage fetch``) downloads and verifies it;
the retire step marks and deletes it. A tampered object and wrong credentials give one clear
line each. The server is ``versitygw`` (``hack/build-tools.sh s3``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.s3 import S3Server
from modelops import datasets, storage
from modelops.api import artifact as contract
from tests.harness.test_s3_server import require_binary
from tests.unit.test_examples import EXAMPLES

BUCKET = "ml-data"


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    require_binary()
    with S3Server(tmp_path / "s3") as server:
        server.create_bucket(BUCKET)
        yield server


def settings(s3: S3Server, **override: str) -> storage.S3Settings:
    keys = {"access_key": s3.access_key, "secret_key": s3.secret_key, **override}
    return storage.S3Settings(endpoint=s3.endpoint, region=s3.region, path_style=True, **keys)


def pod_env(s3: S3Server, **override: str) -> dict[str, str]:
    """What the operator puts in a pod that moves data (builders.storage_env), resolved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOPS_", "AWS_"))}
    return env | {
        "MODELOPS_S3_ENDPOINT": s3.endpoint,
        "MODELOPS_S3_REGION": s3.region,
        "MODELOPS_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        **override,
    }


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def trainer_env(s3: S3Server, tmp_path: Path, dataset: str, output: str) -> dict[str, str]:
    return pod_env(s3) | {
        "MODELOPS_TRAINER_DATASET_URI": dataset,
        "MODELOPS_TRAINER_DATASET": str(tmp_path / "dataset" / dataset.rsplit("/", 1)[-1]),
        "MODELOPS_TRAINER_OUTPUT_DIR": str(tmp_path / "artifact"),
        "MODELOPS_TRAINER_OUTPUT_URI": output,
        "MODELOPS_TRAINER_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }


def result(tmp_path: Path) -> contract.TrainingResult | contract.TrainingFailure:
    return contract.parse_termination_message((tmp_path / "termination-log").read_text())


def test_reference_trainer_reads_and_writes_s3_and_the_init_step_verifies(
    s3: S3Server, tmp_path: Path
) -> None:
    iris = datasets.path("iris.csv").read_bytes()
    storage.put_bytes(f"s3://{BUCKET}/data/iris.csv", iris, settings(s3))
    output = f"s3://{BUCKET}/models/iris/iris-1"
    env = trainer_env(s3, tmp_path, f"s3://{BUCKET}/data/iris.csv", output)
    env["MODELOPS_TRAINER_DATASET_DIGEST"] = contract.sha256_digest(iris)
    done = run(["-m", "modelops.runtimes.trainer"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = result(tmp_path)
    assert isinstance(trained, contract.TrainingResult)
    assert trained.artifact.uri == output
    assert trained.dataset.uri == f"s3://{BUCKET}/data/iris.csv"
    # The init step of a serving pod: download, verify, leave what the server loads.
    served = tmp_path / "served"
    fetch = run(
        [
            "-m",
            "modelops.storage",
            "fetch",
            "--uri",
            output,
            "--digest",
            trained.artifact.digest,
            "--dest",
            str(served),
            "--termination-log",
            str(tmp_path / "fetch-log"),
        ],
        pod_env(s3),
    )
    assert fetch.returncode == 0, fetch.stderr
    assert sorted(p.name for p in served.iterdir()) == [
        "manifest.json",
        "model.json",
        "reference.json",
    ]
    contract.verify_artifact(served, trained.artifact.digest)


def test_a_tampered_object_is_refused_before_serving(s3: S3Server, tmp_path: Path) -> None:
    from tests.unit.test_onnx import iris_artifact

    _, _, written = iris_artifact(tmp_path / "local")
    uri = f"s3://{BUCKET}/models/iris/2"
    storage.upload_artifact(written.directory, uri, settings(s3))
    storage.put_bytes(f"{uri}/model.onnx", b"not the model", settings(s3))
    log = tmp_path / "fetch-log"
    fetch = run(
        [
            "-m",
            "modelops.storage",
            "fetch",
            "--uri",
            uri,
            "--digest",
            written.digest,
            "--dest",
            str(tmp_path / "served"),
            "--termination-log",
            str(log),
        ],
        pod_env(s3),
    )
    assert fetch.returncode == 1
    assert "model.onnx has digest" in log.read_text()
    assert "the object was altered" in log.read_text()
    assert not (tmp_path / "served" / "manifest.json").exists()


def test_wrong_credentials_are_one_clear_line(s3: S3Server, tmp_path: Path) -> None:
    storage.put_bytes(f"s3://{BUCKET}/data/iris.csv", b"a,b\n", settings(s3))
    env = trainer_env(
        s3, tmp_path, f"s3://{BUCKET}/data/iris.csv", f"s3://{BUCKET}/models/iris/x"
    ) | {"AWS_SECRET_ACCESS_KEY": "0" * 40}
    done = run(["-m", "modelops.runtimes.trainer"], env)
    assert done.returncode != 0
    failure = result(tmp_path)
    assert isinstance(failure, contract.TrainingFailure)
    assert "refused the credentials" in failure.error
    assert "SignatureDoesNotMatch" in failure.error
    assert "credentialsSecret" in failure.error


def test_the_sdk_example_uploads_its_artifact(s3: S3Server, tmp_path: Path) -> None:
    storage.put_bytes(
        f"s3://{BUCKET}/data/iris.csv", datasets.path("iris.csv").read_bytes(), settings(s3)
    )
    output = f"s3://{BUCKET}/models/iris-sklearn/iris-sklearn-1"
    env = trainer_env(s3, tmp_path, f"s3://{BUCKET}/data/iris.csv", output)
    env["MODELOPS_TRAINER_HYPERPARAMETERS"] = json.dumps({"C": 1.0, "seed": 0})
    done = run([str(EXAMPLES / "sklearn-iris" / "train.py")], env)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = result(tmp_path)
    assert isinstance(trained, contract.TrainingResult)
    assert trained.artifact.format == "onnx/v1"
    names = storage.fetch_artifact(output, trained.artifact.digest, tmp_path / "f", settings(s3))
    assert "model.onnx" in names


def test_retirement_marks_then_deletes_on_request(s3: S3Server, tmp_path: Path) -> None:
    from tests.unit.test_onnx import iris_artifact

    _, _, written = iris_artifact(tmp_path / "local")
    uri = f"s3://{BUCKET}/models/iris/3"
    storage.upload_artifact(written.directory, uri, settings(s3))
    keep = run(
        ["-m", "modelops.storage", "retire", "--uri", uri, "--version", "3", "--reason", "old"],
        pod_env(s3),
    )
    assert keep.returncode == 0, keep.stderr
    # Marked, not deleted: a fetched copy carries the marker, so the server refuses it.
    fetched = storage.fetch_artifact(uri, written.digest, tmp_path / "f", settings(s3))
    assert storage.RETIRED_MARKER in fetched
    gone = run(
        [
            "-m",
            "modelops.storage",
            "retire",
            "--uri",
            uri,
            "--version",
            "3",
            "--reason",
            "old",
            "--delete-artifacts",
        ],
        pod_env(s3),
    )
    assert gone.returncode == 0, gone.stderr
    assert "deleted manifest.json, model.json, model.onnx, reference.json" in gone.stdout
    assert storage.exists(f"{uri}/{storage.RETIRED_MARKER}", settings(s3))
    assert not storage.exists(f"{uri}/manifest.json", settings(s3))
