"""The trainer refuses tainted data: one failing dataset per rule, and the message it gets;
and how a partial or absent schema is completed from the data.

Pure: CSV text in, typed table or `DatasetRefusedError` out; nothing touches the disk.
"""

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelops.runtimes.trainer.dataset import read_csv
from modelops.runtimes.trainer.errors import DatasetRefusedError
from modelops.runtimes.trainer.schema import (
    DatasetSchema,
    SchemaError,
    complete,
    infer_schema,
    load_schema,
)
from modelops.runtimes.trainer.split import split
from modelops.runtimes.trainer.validation import Table, validate

SCHEMA: dict[str, Any] = {
    "target": "species",
    "task": "classification",
    "minRows": 3,
    "columns": [
        {"name": "petal_width", "type": "numeric", "min": 0, "max": 10, "maxNaNShare": 0.0},
        {"name": "colour", "type": "categorical", "allowed": ["blue", "red"], "maxNaNShare": 0.5},
        {"name": "species", "type": "categorical", "allowed": ["setosa", "virginica"]},
    ],
}

GOOD = """petal_width,colour,species
0.2,blue,setosa
1.8,red,virginica
0.3,,setosa
2.1,red,virginica
"""


def schema(**changes: object) -> DatasetSchema:
    return DatasetSchema.model_validate(SCHEMA | changes)


def check(csv_text: str, dataset_schema: DatasetSchema | None = None) -> Table:
    raw = read_csv(csv_text.encode())
    return validate(raw, complete(dataset_schema or schema(), raw))


def refusal(csv_text: str, dataset_schema: DatasetSchema | None = None) -> str:
    with pytest.raises(DatasetRefusedError) as caught:
        check(csv_text, dataset_schema)
    assert caught.value.exit_code == 2
    return str(caught.value)


def test_good_data_is_typed() -> None:
    table = check(GOOD)
    assert table.rows == 4
    assert table.numeric["petal_width"].tolist() == [0.2, 1.8, 0.3, 2.1]
    assert table.categorical["colour"].tolist() == ["blue", "red", "", "red"]
    assert table.categorical["species"].tolist() == ["setosa", "virginica"] * 2


def test_undeclared_columns_become_features_in_file_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    text = "size,species,petal_width,colour,shade\n" + "\n".join(
        ["1,setosa,0.2,blue,dark", ",virginica,1.8,red,", "3,setosa,0.3,,light"]
    )
    raw = read_csv(text.encode())
    completed = complete(schema(), raw)
    assert [(c.name, c.type, c.max_nan_share) for c in completed.features] == [
        ("size", "numeric", 1.0),
        ("petal_width", "numeric", 0.0),
        ("colour", "categorical", 0.5),
        ("shade", "categorical", 1.0),
    ]
    assert completed.target_column == schema().target_column
    assert "Inferred undeclared feature columns: size (numeric), shade (categorical)" in (
        caplog.text
    )
    assert np.isnan(validate(raw, completed).numeric["size"][1])


def test_an_undeclared_target_takes_its_type_from_the_task() -> None:
    partial = DatasetSchema(target="y", task="classification")
    table = check("x,y\n1,2\n2,3\n3,2\n", partial)
    assert table.categorical["y"].tolist() == ["2", "3", "2"]  # integer labels stay labels
    regression = DatasetSchema(target="y", task="regression")
    assert refusal("x,y\n1,2\n2,high\n", regression) == (
        'dataset refused: column "y": 1 non-numeric value, first "high" on line 3 (rule: numeric)'
    )


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        pytest.param(
            GOOD.replace("petal_width,", "width,"),
            'dataset refused: column "petal_width" is missing (rule: present)',
            id="present",
        ),
        pytest.param(
            GOOD.replace(",species", ",kind"),
            'dataset refused: column "species" is missing (rule: present)',
            id="present-target",
        ),
        pytest.param(
            "species\nsetosa\nvirginica\nsetosa\n",
            'dataset refused: column "petal_width" is missing (rule: present); '
            'column "colour" is missing (rule: present); '
            'no feature column besides the target "species" (rule: features)',
            id="features",
        ),
        pytest.param(
            "petal_width,colour,species\n0.2,blue,setosa\n1.8,red,virginica\n",
            "dataset refused: 2 rows, fewer than minRows 3 (rule: minRows)",
            id="minRows",
        ),
        pytest.param(
            GOOD.replace("1.8,", "wide,").replace("2.1,", "inf,"),
            'dataset refused: column "petal_width": 2 non-numeric values, '
            'first "wide" on line 3 (rule: numeric)',
            id="numeric",
        ),
        pytest.param(
            GOOD.replace("0.3,", "NaN,"),
            'dataset refused: column "petal_width": 1 of 4 values missing, '
            "more than maxNaNShare 0 allows (rule: maxNaNShare)",
            id="maxNaNShare",
        ),
        pytest.param(
            GOOD.replace("0.2,", "-0.2,"),
            'dataset refused: column "petal_width": 1 value below min 0 (rule: min)',
            id="min",
        ),
        pytest.param(
            GOOD.replace("1.8,", "18,").replace("2.1,", "21,").replace("0.3,", "30,"),
            'dataset refused: column "petal_width": 3 values above max 10 (rule: max)',
            id="max",
        ),
        pytest.param(
            GOOD.replace("1.8,red,", "1.8,green,"),
            'dataset refused: column "colour": 1 value not in the allowed set, '
            'first "green" on line 3 (rule: allowed)',
            id="allowed",
        ),
        pytest.param(
            GOOD.replace("2.1,red,virginica", "2.1,red,versicolor"),
            'dataset refused: column "species": 1 value not in the allowed set, '
            'first "versicolor" on line 5 (rule: allowed)',
            id="allowed-target",
        ),
        pytest.param(
            GOOD.replace("1.8,red,virginica", "1.8,red,"),
            'dataset refused: column "species": 1 of 4 values missing, '
            "more than maxNaNShare 0 allows (rule: maxNaNShare)",
            id="missing-target",
        ),
        pytest.param(
            GOOD.replace("virginica", "setosa"),
            'dataset refused: column "species": only one class ("setosa"), '
            "at least 2 are needed (rule: classes)",
            id="classes",
        ),
    ],
)
def test_each_rule_refuses(csv_text: str, message: str) -> None:
    assert refusal(csv_text) == message


def test_integer_columns_refuse_fractions() -> None:
    counted = DatasetSchema.model_validate(
        {
            "target": "species",
            "task": "classification",
            "columns": [{"name": "petals", "type": "integer", "min": 0}],
        }
    )
    assert check("petals,species\n1,setosa\n3.0,virginica\n", counted).numeric[
        "petals"
    ].tolist() == [1.0, 3.0]
    assert refusal("petals,species\n1,setosa\n2.5,virginica\n", counted) == (
        'dataset refused: column "petals": 1 non-integer value, first "2.5" on line 3 '
        "(rule: integer)"
    )


def test_missing_share_at_the_limit_passes_above_it_refuses() -> None:
    # colour allows half its values missing: 2 of 4 passes, 3 of 4 does not.
    check(GOOD.replace("blue", ""))
    message = refusal(GOOD.replace("blue", "").replace("1.8,red,", "1.8,,"))
    assert message == (
        'dataset refused: column "colour": 3 of 4 values missing, '
        "more than maxNaNShare 0.5 allows (rule: maxNaNShare)"
    )


def test_every_violation_is_listed() -> None:
    message = refusal(GOOD.replace("0.2,blue", "-1,green").replace("2.1,", "99,"))
    assert message == (
        'dataset refused: column "petal_width": 1 value below min 0 (rule: min); '
        'column "petal_width": 1 value above max 10 (rule: max); '
        'column "colour": 1 value not in the allowed set, first "green" on line 2 '
        "(rule: allowed)"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "dataset refused: the file is empty, a header row is needed (rule: csv)"),
        pytest.param(
            b"a,b\n1,2\n3\n", "dataset refused: line 3 has 1 fields, the header has 2 (rule: csv)"
        ),
        pytest.param(
            b"a,a\n1,2\n", 'dataset refused: column "a" appears more than once (rule: csv)'
        ),
        pytest.param(b"a,b\n\xff,1\n", "dataset refused: not UTF-8 text at byte 4 (rule: csv)"),
    ],
)
def test_unreadable_csv_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(DatasetRefusedError) as caught:
        read_csv(data)
    assert str(caught.value) == message


def test_too_few_rows_to_split_is_refused() -> None:
    with pytest.raises(DatasetRefusedError, match=r"\(rule: split\)$"):
        split(None, 1, 0.2, seed=0)


def test_schema_from_json_text_or_file(tmp_path: Path) -> None:
    text = json.dumps(SCHEMA)
    (tmp_path / "schema.json").write_text(text)
    assert load_schema(text) == load_schema(str(tmp_path / "schema.json")) == schema()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("{not json", "schema is not valid JSON"),
        pytest.param("/nonexistent/schema.json", "cannot read schema file"),
        pytest.param(
            json.dumps(SCHEMA | {"target": "colour", "task": "regression"}),
            "the target of a regression task must be numeric",
        ),
        pytest.param(
            json.dumps(
                SCHEMA
                | {"columns": [{"name": "species", "type": "categorical", "maxNaNShare": 0.1}]}
            ),
            "the target column cannot allow missing values",
        ),
        pytest.param(
            json.dumps(SCHEMA | {"columns": [{"name": "x", "type": "integer", "allowed": ["1"]}]}),
            "integer column 'x' cannot have allowed values",
        ),
        pytest.param(
            json.dumps(SCHEMA | {"columns": [*SCHEMA["columns"], {"name": "x", "type": "text"}]}),
            "columns.3.type: Input should be 'numeric', 'integer' or 'categorical'",
        ),
        pytest.param(
            json.dumps(SCHEMA | {"minrows": 3}), "minrows: Extra inputs are not permitted"
        ),
    ],
)
def test_unusable_schema_fails_with_exit_code_1(source: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as caught:
        load_schema(source)
    assert caught.value.exit_code == 1


def test_without_schema_the_last_column_is_the_target(caplog: pytest.LogCaptureFixture) -> None:
    table = read_csv(b"x,colour,y\n1,red,2.5\n,blue,3.5\n")
    inferred = infer_schema(table)
    assert inferred == DatasetSchema(target="y", task="regression")
    assert "No schema given: taking the last column y as the target of a regression task" in (
        caplog.text
    )
    assert infer_schema(read_csv(b"x,y\n1,a\n")).task == "classification"
    assert [(c.name, c.type) for c in complete(inferred, table).columns] == [
        ("x", "numeric"),
        ("colour", "categorical"),
        ("y", "numeric"),
    ]


def target_column(values: list[str]) -> bytes:
    """A two-column CSV whose last column, the inferred target, holds `values`."""
    return ("x,y\n" + "".join(f"{i},{value}\n" for i, value in enumerate(values))).encode()


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        pytest.param(["0", "1"] * 50, "2 distinct whole numbers (0, 1)", id="binary-labels"),
        pytest.param(
            [str(v) for v in range(1, 21)] * 3,
            "20 distinct whole numbers (1, 2, 3, 4, 5, …)",
            id="twenty-values",
        ),
        pytest.param(
            ["1.0", "2.0", "NA", "3.0", "-1"],
            "4 distinct whole numbers (-1, 1.0, 2.0, 3.0)",
            id="written-as-floats",
        ),
    ],
)
def test_without_schema_a_target_of_few_whole_numbers_is_refused(
    values: list[str], shown: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        infer_schema(read_csv(target_column(values)))
    assert caught.value.exit_code == 1
    assert str(caught.value) == (
        f'cannot infer the task: the target "y" (the last column, no schema given) holds '
        f"{shown}, which may be class labels or quantities; declare the task as "
        '"classification" or "regression" in the schema\'s "task" field '
        "(TrainingRun spec.dataset.schema.task; MODELOPS_TRAINER_SCHEMA or --schema when "
        "running the trainer directly)"
    )


@pytest.mark.parametrize(
    ("values", "task"),
    [
        pytest.param([str(v) for v in range(21)], "regression", id="21-whole-numbers"),
        pytest.param(["0", "1", "0.5"], "regression", id="a-fraction"),
        pytest.param(["01", "1.0", "Setosa"], "classification", id="a-string"),
        pytest.param(["0", "1", "yes"], "classification", id="integers-and-a-string"),
        pytest.param(["", "NA"], "regression", id="all-missing-left-to-validation"),
    ],
)
def test_without_schema_other_targets_get_their_task(values: list[str], task: str) -> None:
    assert infer_schema(read_csv(target_column(values))).task == task
