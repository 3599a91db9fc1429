"""Checking a raw table against its declared schema, and turning it into typed columns.

Validation runs before any training and refuses tainted data as a whole: every rule is
checked, and the refusal lists every violation, each naming the column and the rule:

| rule | refuses |
|---|---|
| `present` | a declared column or the target the data does not have |
| `features` | data without any column besides the target |
| `minRows` | fewer data rows than `minRows` |
| `numeric` | a present value of a numeric or integer column that is not a finite number |
| `integer` | a number in an integer column that is not whole |
| `maxNaNShare` | a larger share of missing values than `maxNaNShare` (default 0) |
| `min`, `max` | a numeric value below `min` or above `max` |
| `allowed` | a categorical value (the target's included) outside `allowed` |
| `classes` | a classification target with fewer than two distinct classes |
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelops.runtimes.trainer.dataset import RawTable, is_missing
from modelops.runtimes.trainer.errors import DatasetRefusedError, Violation
from modelops.runtimes.trainer.schema import ColumnSchema, DatasetSchema

FloatArray = NDArray[np.float64]
TextArray = NDArray[np.str_]

MISSING_CATEGORY = ""
"""How a missing categorical value is held in a `Table`."""


@dataclass(frozen=True)
class Table:
    """Validated data: numeric columns as floats (NaN where missing), categorical as text."""

    numeric: dict[str, FloatArray]
    categorical: dict[str, TextArray]
    rows: int

    def take(self, indices: NDArray[np.intp]) -> "Table":
        """The rows at `indices`, in that order."""
        return Table(
            numeric={name: values[indices] for name, values in self.numeric.items()},
            categorical={name: values[indices] for name, values in self.categorical.items()},
            rows=len(indices),
        )


def validate(table: RawTable, schema: DatasetSchema) -> Table:
    """Check `table` against every rule of `schema`; return its columns, typed.

    `schema` must come from `schema.complete`, i.e. have rules for every column of `table`.
    Raises `DatasetRefusedError` listing every violation.
    """
    violations: list[Violation] = []
    absent = [column.name for column in schema.columns if column.name not in table.header]
    violations += [Violation(f'column "{name}" is missing', "present") for name in absent]
    if all(column.name in absent for column in schema.features):
        violations.append(
            Violation(f'no feature column besides the target "{schema.target}"', "features")
        )
    if len(table.rows) < schema.min_rows:
        violations.append(
            Violation(f"{len(table.rows)} rows, fewer than minRows {schema.min_rows}", "minRows")
        )
    numeric: dict[str, FloatArray] = {}
    categorical: dict[str, TextArray] = {}
    for column in schema.columns:
        if column.name in absent:
            continue
        raw = table.column(column.name)
        if column.is_numeric:
            values, problems = _numeric(column, raw, table.lines)
            numeric[column.name] = values
        else:
            texts, problems = _categorical(column, raw, table.lines)
            categorical[column.name] = texts
        violations += problems
    if not violations and schema.task == "classification":
        classes = np.unique(categorical[schema.target])
        if len(classes) < 2:
            violations.append(
                Violation(
                    f'column "{schema.target}": only one class ("{classes[0]}"), '
                    "at least 2 are needed",
                    "classes",
                )
            )
    if violations:
        raise DatasetRefusedError(violations)
    return Table(numeric=numeric, categorical=categorical, rows=len(table.rows))


def _numeric(
    column: ColumnSchema, raw: Sequence[str], lines: Sequence[int]
) -> tuple[FloatArray, list[Violation]]:
    values = np.full(len(raw), np.nan)
    unparsable: list[int] = []
    for index, text in enumerate(raw):
        if is_missing(text):
            continue
        try:
            number = float(text)
        except ValueError:
            unparsable.append(index)
            continue
        if math.isfinite(number):
            values[index] = number
        else:
            unparsable.append(index)
    problems: list[Violation] = []
    if unparsable:
        first = unparsable[0]
        problems.append(
            Violation(
                f'column "{column.name}": {_values(len(unparsable), "non-numeric")}, '
                f'first "{raw[first]}" on line {lines[first]}',
                "numeric",
            )
        )
    missing = len(raw) - len(unparsable) - int(np.count_nonzero(~np.isnan(values)))
    problems += _missing_share(column, missing, len(raw))
    present = values[~np.isnan(values)]
    if column.type == "integer":
        fractional = np.flatnonzero(~np.isnan(values) & (values != np.floor(values)))
        if fractional.size:
            first = int(fractional[0])
            problems.append(
                Violation(
                    f'column "{column.name}": {_values(fractional.size, "non-integer")}, '
                    f'first "{raw[first]}" on line {lines[first]}',
                    "integer",
                )
            )
    if column.min is not None and (below := int(np.count_nonzero(present < column.min))):
        problems.append(
            Violation(
                f'column "{column.name}": {_values(below)} below min {_number(column.min)}', "min"
            )
        )
    if column.max is not None and (above := int(np.count_nonzero(present > column.max))):
        problems.append(
            Violation(
                f'column "{column.name}": {_values(above)} above max {_number(column.max)}', "max"
            )
        )
    return values, problems


def _categorical(
    column: ColumnSchema, raw: Sequence[str], lines: Sequence[int]
) -> tuple[TextArray, list[Violation]]:
    texts = [MISSING_CATEGORY if is_missing(text) else text.strip() for text in raw]
    missing = texts.count(MISSING_CATEGORY)
    problems = _missing_share(column, missing, len(raw))
    if column.allowed is not None:
        allowed = set(column.allowed)
        outside = [i for i, text in enumerate(texts) if text and text not in allowed]
        if outside:
            first = outside[0]
            problems.append(
                Violation(
                    f'column "{column.name}": {_values(len(outside))} not in the allowed set, '
                    f'first "{texts[first]}" on line {lines[first]}',
                    "allowed",
                )
            )
    return np.array(texts, dtype=np.str_), problems


def _missing_share(column: ColumnSchema, missing: int, rows: int) -> list[Violation]:
    if missing and missing > column.max_nan_share * rows:
        return [
            Violation(
                f'column "{column.name}": {missing} of {rows} values missing, '
                f"more than maxNaNShare {_number(column.max_nan_share)} allows",
                "maxNaNShare",
            )
        ]
    return []


def _values(count: int, kind: str = "") -> str:
    """`1 value`, `3 values`, `2 non-numeric values`."""
    noun = "value" if count == 1 else "values"
    return f"{count} {kind} {noun}" if kind else f"{count} {noun}"


def _number(value: float) -> str:
    """A bound as the user most likely wrote it: `10`, not `10.0`."""
    return str(int(value)) if value.is_integer() else repr(value)
