"""The declared schema of a dataset: which columns, which types, which values are acceptable.

The field names and meanings mirror `TrainingRun.spec.dataset.schema`, so the operator can
pass that object through unchanged as JSON. A schema may declare only some columns: the
others are still features, with their type inferred from the data (`complete`).
"""

import json
import logging
import math
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from modelops.api.artifact import Task
from modelops.runtimes.trainer.dataset import RawTable, is_missing
from modelops.runtimes.trainer.errors import TrainerError, describe

logger = logging.getLogger(__name__)

ColumnType = Literal["numeric", "integer", "categorical"]

AMBIGUOUS_TARGET_VALUES = 20
"""Without a schema, a target of whole numbers with at most this many distinct values is
refused rather than taken for regression: class labels are often integers (0/1, encoded
classes, ratings), while a quantity to regress on rarely takes so few values. 20 covers the
usual label sets (ten digits, a 1-10 scale) with room to spare."""


class SchemaError(TrainerError):
    """The schema itself is unusable (as opposed to data that breaks a valid schema)."""


class ColumnSchema(BaseModel):
    """Rules for one column. Every declared column must be present in the data."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        use_attribute_docstrings=True,
    )

    name: str = Field(min_length=1)
    type: ColumnType
    """`numeric`: every present value must parse as a finite number; `integer`: as a whole
    number; `categorical`: any text. Numeric and integer columns are numeric model features."""
    min: float | None = None
    """Numeric and integer only: no value may be below this."""
    max: float | None = None
    """Numeric and integer only: no value may be above this."""
    max_nan_share: float = Field(default=0.0, ge=0, le=1, alias="maxNaNShare")
    """Largest acceptable share of missing values (empty, `NaN`, `NA` or `null`)."""
    allowed: list[str] | None = None
    """Categorical only: the complete set of acceptable values; also fixes their encoding
    order. Without it the categories are those seen in the training split, sorted."""

    @model_validator(mode="after")
    def _rules_match_type(self) -> "ColumnSchema":
        if self.type == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError(f"categorical column {self.name!r} cannot have min or max")
        if self.type != "categorical" and self.allowed is not None:
            raise ValueError(f"{self.type} column {self.name!r} cannot have allowed values")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r} has min above max")
        if self.allowed is not None:
            if not self.allowed or len(set(self.allowed)) != len(self.allowed):
                raise ValueError(f"allowed values of {self.name!r} must be distinct, not empty")
            if any(is_missing(value) for value in self.allowed):
                raise ValueError(f"allowed values of {self.name!r} cannot be missing markers")
        return self

    @property
    def is_numeric(self) -> bool:
        """Whether the column holds numbers (`numeric` or `integer`)."""
        return self.type != "categorical"


class DatasetSchema(BaseModel):
    """The whole dataset: which column is the target, rules for some or all columns, and how
    many rows it needs.

    Every column of the data other than the target is a feature, in the order of the file,
    whether declared here or not (`complete` infers the undeclared ones).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        use_attribute_docstrings=True,
    )

    target: str = Field(min_length=1)
    """The column to predict."""
    task: Task
    """`classification` (the target is categorical) or `regression` (the target is numeric)."""
    columns: list[ColumnSchema] = []
    """Rules for the columns that have any; the target may be among them."""
    min_rows: int = Field(default=1, ge=1, alias="minRows")
    """Fewest data rows (not counting the header) the dataset may have."""

    @field_validator("columns")
    @classmethod
    def _names_unique(cls, columns: list[ColumnSchema]) -> list[ColumnSchema]:
        names = [column.name for column in columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be distinct")
        return columns

    @model_validator(mode="after")
    def _target_fits_task(self) -> "DatasetSchema":
        target = self.declared(self.target)
        if target is None:
            return self
        if self.task == "classification" and target.is_numeric:
            raise ValueError("the target of a classification task must be categorical")
        if self.task == "regression" and not target.is_numeric:
            raise ValueError("the target of a regression task must be numeric or integer")
        if target.max_nan_share > 0:
            raise ValueError("the target column cannot allow missing values")
        return self

    def declared(self, name: str) -> ColumnSchema | None:
        """The declared rules of column `name`, or None if the schema does not declare it."""
        return next((column for column in self.columns if column.name == name), None)

    @property
    def target_column(self) -> ColumnSchema:
        """The rules of the target column. Raises `KeyError` if it is not declared (it always
        is in a schema returned by `complete`)."""
        target = self.declared(self.target)
        if target is None:
            raise KeyError(self.target)
        return target

    @property
    def features(self) -> list[ColumnSchema]:
        """The declared columns other than the target, in order."""
        return [column for column in self.columns if column.name != self.target]


def load_schema(source: str) -> DatasetSchema:
    """Read a schema from a JSON document or, if `source` does not start with `{`, a file path.

    Raises `SchemaError` saying what is wrong.
    """
    text = source
    if not source.lstrip().startswith("{"):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise SchemaError(f"cannot read schema file {source}: {error.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(f"schema is not valid JSON: {error}") from None
    try:
        return DatasetSchema.model_validate(document)
    except ValidationError as error:
        raise SchemaError(f"invalid schema: {describe(error)}") from None


def infer_schema(table: RawTable) -> DatasetSchema:
    """The schema of data that came without one: the last column is the target, and the task
    is regression if every present target value is a finite number, classification otherwise.

    A target of whole numbers (`3` or `3.0`) with at most `AMBIGUOUS_TARGET_VALUES` distinct
    values is refused with `SchemaError`: such a column is as likely class labels as a
    quantity, and only the user can tell which. No column is declared, so `complete` infers
    them all and little is checked.
    """
    if len(table.header) < 2:
        raise SchemaError("cannot infer a schema: the dataset needs a target and a feature")
    target = table.header[-1]
    values = table.column(target)
    task: Task = "regression" if _all_numeric(values) else "classification"
    if task == "regression":
        _refuse_ambiguous_target(target, values)
    schema = DatasetSchema(target=target, task=task)
    logger.warning(
        "No schema given: taking the last column %s as the target of a %s task and inferring "
        "every column's type; declare a schema to validate the data",
        target,
        task,
    )
    return schema


def _refuse_ambiguous_target(target: str, values: list[str]) -> None:
    """Raise `SchemaError` if the numeric `values` are few distinct whole numbers."""
    distinct: dict[float, str] = {}
    for value in values:
        if not is_missing(value):
            distinct.setdefault(float(value), value.strip())
    if not distinct or len(distinct) > AMBIGUOUS_TARGET_VALUES:
        return
    if not all(number.is_integer() for number in distinct):
        return
    shown = [distinct[number] for number in sorted(distinct)]
    listed = ", ".join(shown[:5]) + (", …" if len(shown) > 5 else "")
    raise SchemaError(
        f'cannot infer the task: the target "{target}" (the last column, no schema given) '
        f"holds {len(distinct)} distinct whole numbers ({listed}), which may be class labels "
        'or quantities; declare the task as "classification" or "regression" in the schema\'s '
        '"task" field (TrainingRun spec.dataset.schema.task; MODELOPS_TRAINER_SCHEMA or '
        "--schema when running the trainer directly)"
    )


def complete(schema: DatasetSchema, table: RawTable) -> DatasetSchema:
    """`schema` with rules for every column of `table`, in the file's order.

    Declared columns keep their rules; declared columns the file lacks, and a target it lacks,
    come last (validation refuses them). An undeclared target gets the type its task needs
    and no missing values; an undeclared feature is numeric if every present value is a
    finite number, otherwise categorical, and may have missing values.
    """
    columns: list[ColumnSchema] = []
    inferred: list[str] = []
    kind: ColumnType
    for name in table.header:
        declared = schema.declared(name)
        if declared is not None:
            columns.append(declared)
        elif name == schema.target:
            columns.append(_target_rules(schema))
        else:
            kind = "numeric" if _all_numeric(table.column(name)) else "categorical"
            columns.append(ColumnSchema(name=name, type=kind, max_nan_share=1.0))
            inferred.append(f"{name} ({kind})")
    columns += [column for column in schema.columns if column.name not in table.header]
    if schema.target not in table.header and schema.declared(schema.target) is None:
        columns.append(_target_rules(schema))
    if inferred:
        logger.info("Inferred undeclared feature columns: %s", ", ".join(inferred))
    return DatasetSchema(
        target=schema.target, task=schema.task, columns=columns, min_rows=schema.min_rows
    )


def _target_rules(schema: DatasetSchema) -> ColumnSchema:
    """The rules of an undeclared target: the type its task needs, no missing values."""
    kind: ColumnType = "categorical" if schema.task == "classification" else "numeric"
    return ColumnSchema(name=schema.target, type=kind)


def _all_numeric(values: list[str]) -> bool:
    for value in values:
        if is_missing(value):
            continue
        try:
            number = float(value)
        except ValueError:
            return False
        if not math.isfinite(number):
            return False
    return True
