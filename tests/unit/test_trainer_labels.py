"""Class labels travel as written: from the CSV through training, `model.json`, the metrics,
the reference statistics of a categorical feature, and the reference server's V2 predictions.

Labels that look like numbers ("0", "01", "1.0") are text like any other label: nothing along
the way may parse, round or reformat them. Nothing is mocked: the real trainer writes an
artifact into `tmp_path` and the real server application serves it on 127.0.0.1.
"""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils
from prometheus_client import CollectorRegistry

from modelops.api.artifact import (
    CategoricalReference,
    LinearModel,
    ReferenceStats,
    TrainingResult,
)
from modelops.runtimes.server import app as server_app
from modelops.runtimes.server.settings import ServerSettings
from modelops.runtimes.trainer.run import train
from modelops.runtimes.trainer.settings import TrainerSettings

GRADES = ["1.0", "A", "01"]
"""Values of a categorical feature that also look like numbers."""

CENTRES = [0.0, 10.0, 20.0]
"""Where the rows of each class lie on the numeric feature `x`, in the order of the labels."""


def write_dataset(path: Path, labels: list[str]) -> None:
    """20 rows per label, separable on `x`, with the label in the last column as written; the
    grade takes every value with every label, so it tells nothing about the label."""
    lines = ["x,grade,label"]
    for index in range(20 * len(labels)):
        label, step = index % len(labels), index // len(labels)
        x = CENTRES[label] + step % 10 * 0.3
        lines.append(f"{x},{GRADES[step % len(GRADES)]},{labels[label]}")
    path.write_text("\n".join(lines) + "\n")


def classification_schema(labels: list[str]) -> str:
    return json.dumps(
        {
            "target": "label",
            "task": "classification",
            "columns": [{"name": "label", "type": "categorical", "allowed": labels}],
        }
    )


def served_predictions(directory: Path, digest: str, rows: list[float]) -> list[Any]:
    """The `predict` output of the real server for rows with these `x` values."""
    settings = ServerSettings(
        model_name="labels", model_version="v1", artifact_dir=directory, artifact_digest=digest
    )
    body = {
        "inputs": [
            {"name": "x", "shape": [len(rows)], "datatype": "FP64", "data": rows},
            {"name": "grade", "shape": [len(rows)], "datatype": "BYTES", "data": ["A"] * len(rows)},
        ]
    }

    async def predict() -> list[Any]:
        app = server_app.create_app(settings, CollectorRegistry())
        server = test_utils.TestServer(app, host="127.0.0.1")
        async with test_utils.TestClient(server) as client:
            await app[server_app.LOADING].wait()
            response = await client.post("/v2/models/labels/infer", json=body)
            assert response.status == 200, await response.text()
            outputs = {output["name"]: output for output in (await response.json())["outputs"]}
        assert outputs["predict"]["datatype"] == "BYTES"
        data: list[Any] = outputs["predict"]["data"]
        return data

    return asyncio.run(predict())


@pytest.mark.parametrize(
    ("labels", "schema"),
    [
        # A string among them makes the inferred task classification.
        pytest.param(["01", "1.0", "Setosa"], False, id="number-like-and-text-without-schema"),
        pytest.param(["0", "1"], True, id="integer-labels-declared"),
        pytest.param(["2.0", "1.50", "-0"], True, id="float-like-labels-declared"),
    ],
)
def test_labels_are_kept_exactly_as_written(
    tmp_path: Path, labels: list[str], schema: bool
) -> None:
    write_dataset(tmp_path / "data.csv", labels)
    result = train(
        TrainerSettings(
            dataset=tmp_path / "data.csv",
            dataset_schema=classification_schema(labels) if schema else None,
            output_dir=tmp_path / "out",
            termination_log=tmp_path / "termination-log",
        )
    )
    assert isinstance(result, TrainingResult)

    model = LinearModel.model_validate_json((tmp_path / "out" / "model.json").read_bytes())
    # Declared `allowed` values fix the class order; otherwise the labels are sorted as text.
    assert model.classes == (labels if schema else sorted(labels))
    # The held-out truth is compared with the predictions label for label.
    assert result.metrics["accuracy"] == 1.0
    assert result.metrics["f1"] == 1.0

    reference = ReferenceStats.model_validate_json(
        (tmp_path / "out" / "reference.json").read_bytes()
    )
    grade = next(f for f in reference.features if f.name == "grade")
    assert isinstance(grade, CategoricalReference)
    assert grade.categories == sorted(GRADES)

    predicted = served_predictions(tmp_path / "out", result.artifact.digest, CENTRES[: len(labels)])
    assert predicted == labels
