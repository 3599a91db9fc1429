"""The trainer as a program: settings from the environment and flags, exit codes, the
termination log and stdout. Mostly in-process through `main()`; the real `python -m` entry
point runs as a subprocess once per outcome.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelops import datasets
from modelops.api.artifact import TrainingFailure, TrainingResult, parse_termination_message
from modelops.runtimes.trainer.cli import main
from modelops.runtimes.trainer.reference import EXACT_VALUES

PREFIX = "MODELOPS_TRAINER_"


@pytest.fixture(autouse=True)
def no_trainer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, not from variables of the machine running it."""
    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)


def environment(tmp_path: Path, dataset: Path | None = None) -> dict[str, str]:
    return {
        f"{PREFIX}DATASET": str(dataset or datasets.path("iris.csv")),
        f"{PREFIX}SCHEMA": str(datasets.path("iris.schema.json")),
        f"{PREFIX}OUTPUT_DIR": str(tmp_path / "out"),
        f"{PREFIX}OUTPUT_URI": "pvc://models/iris/iris-7",
        f"{PREFIX}TERMINATION_LOG": str(tmp_path / "termination-log"),
        f"{PREFIX}DATASET_URI": "pvc://datasets/iris.csv",
    }


def tainted_iris(tmp_path: Path) -> Path:
    lines = datasets.path("iris.csv").read_text().splitlines()
    for index in (5, 60, 120):
        fields = lines[index].split(",")
        fields[3] = "12.5"  # petal_width, above the schema's max of 10
        lines[index] = ",".join(fields)
    path = tmp_path / "tainted.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


REFUSAL = 'dataset refused: column "petal_width": 3 values above max 10 (rule: max)'


@pytest.mark.parametrize("outcome", ["trained", "refused"])
def test_python_dash_m_exit_codes(tmp_path: Path, outcome: str) -> None:
    dataset = tainted_iris(tmp_path) if outcome == "refused" else None
    completed = subprocess.run(
        [sys.executable, "-m", "modelops.runtimes.trainer"],
        env=os.environ | environment(tmp_path, dataset),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    message = (tmp_path / "termination-log").read_text()
    document = parse_termination_message(message)
    if outcome == "trained":
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout == message + "\n"
        assert isinstance(document, TrainingResult)
        assert document.artifact.uri == "pvc://models/iris/iris-7"
        assert document.dataset.uri == "pvc://datasets/iris.csv"
        assert "Wrote artifact sha256:" in completed.stderr
    else:
        assert completed.returncode == 2
        assert completed.stdout == ""
        assert document == TrainingFailure(error=REFUSAL)
        assert not (tmp_path / "out").exists()


def test_flags_override_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(f"{PREFIX}SEED", "not a number")
    code = main(
        ["--seed", "3", "--output-dir", str(tmp_path / "flagged"), "--required-metrics", "f1"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert (tmp_path / "flagged" / "manifest.json").exists()
    assert set(result["metrics"]) == {"accuracy", "f1", "auc"}


def test_hyperparameters_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(f"{PREFIX}HYPERPARAMETERS", '{"learningRate": 0.1, "epochs": 5, "bins": 4}')
    assert main([]) == 0
    reference = json.loads((tmp_path / "out" / "reference.json").read_bytes())
    # Four bins give quantile buckets only to columns with more than EXACT_VALUES values.
    for feature in reference["features"]:
        expected = 5 if feature["distinct"] > EXACT_VALUES else feature["distinct"] + 1
        assert len(feature["binEdges"]) <= expected


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param(
            {f"{PREFIX}DATASET": None},
            "invalid settings: dataset: Field required",
            id="missing-setting",
        ),
        pytest.param(
            {f"{PREFIX}HYPERPARAMETERS": '{"learnignRate": 0.1}'},
            "invalid settings: hyperparameters.learnignRate: Extra inputs are not permitted",
            id="misspelt-hyperparameter",
        ),
        pytest.param(
            {f"{PREFIX}HYPERPARAMETERS": "{epochs: 5}"},
            "invalid settings: hyperparameters: Value error, Expecting property name enclosed "
            "in double quotes: line 1 column 2 (char 1)",
            id="malformed-hyperparameters",
        ),
        pytest.param(
            {f"{PREFIX}DATASET": "/nonexistent/iris.csv"},
            "cannot read dataset /nonexistent/iris.csv: No such file or directory",
            id="unreadable-dataset",
        ),
        pytest.param(
            {f"{PREFIX}SCHEMA": '{"target": "species"}'},
            "invalid schema: task: Field required",
            id="invalid-schema",
        ),
    ],
)
def test_other_failures_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, str | None], error: str
) -> None:
    for name, value in (environment(tmp_path) | changes).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert main([]) == 1
    assert json.loads((tmp_path / "termination-log").read_bytes()) == {"error": error}


def test_integer_target_without_schema_fails_asking_for_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = tmp_path / "binary.csv"
    dataset.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    for name, value in environment(tmp_path, dataset).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(f"{PREFIX}SCHEMA")
    assert main([]) == 1
    error = json.loads((tmp_path / "termination-log").read_bytes())["error"]
    assert error.startswith('cannot infer the task: the target "label"')
    assert "spec.dataset.schema.task" in error
    assert not (tmp_path / "out").exists()


def test_unwritable_termination_log_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(f"{PREFIX}TERMINATION_LOG", str(tmp_path / "no" / "such" / "dir" / "log"))
    assert main([]) == 0
    assert "Could not write the termination log" in caplog.text


def test_a_dataset_with_other_content_than_pinned_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    pinned = "sha256:" + "0" * 64
    monkeypatch.setenv(f"{PREFIX}DATASET_DIGEST", pinned)
    assert main([]) == 2
    actual = "sha256:" + hashlib.sha256(datasets.path("iris.csv").read_bytes()).hexdigest()
    assert json.loads((tmp_path / "termination-log").read_bytes()) == {
        "error": f"dataset refused: the file has digest {actual}, expected {pinned} (rule: digest)"
    }
    monkeypatch.setenv(f"{PREFIX}DATASET_DIGEST", actual)
    assert main([]) == 0
