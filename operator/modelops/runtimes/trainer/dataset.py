"""Reading a CSV dataset into a table of raw strings, before any type is assumed.

Parsing into types is validation's job (`modelops.runtimes.trainer.validation`), so that a
bad value is reported against the schema rule it breaks rather than as a parse error.
"""

import csv
import io
from dataclasses import dataclass

from modelops.runtimes.trainer.errors import DatasetRefusedError

MISSING_MARKERS = frozenset({"", "nan", "na", "null"})
"""Values (after stripping blanks, case-insensitive) that mean "no value"."""


def is_missing(value: str) -> bool:
    """Whether a raw value means "no value" (empty, `NaN`, `NA` or `null`, any case)."""
    return value.strip().lower() in MISSING_MARKERS


@dataclass(frozen=True)
class RawTable:
    """A parsed CSV file: the header and the data rows, every cell as its original text."""

    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    """The line of the file each row ends on, for messages that point at a value."""

    def column(self, name: str) -> list[str]:
        """The values of one column, in row order. Raises `ValueError` if it is absent."""
        index = self.header.index(name)
        return [row[index] for row in self.rows]


def read_csv(data: bytes) -> RawTable:
    """Parse the bytes of a CSV file with a header row.

    Raises `DatasetRefusedError` if the file is not UTF-8 text, has no header, repeats a column
    name, or has a row whose number of fields differs from the header. Blank lines are skipped.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetRefusedError.one(f"not UTF-8 text at byte {error.start}", "csv") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            if record:
                records.append((reader.line_num, record))
    except csv.Error as error:
        raise DatasetRefusedError.one(
            f"line {reader.line_num}: malformed CSV: {error}", "csv"
        ) from None
    if not records:
        raise DatasetRefusedError.one("the file is empty, a header row is needed", "csv")
    _, header = records[0]
    header = [name.strip() for name in header]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetRefusedError.one(f'column "{duplicates[0]}" appears more than once', "csv")
    for line, record in records[1:]:
        if len(record) != len(header):
            raise DatasetRefusedError.one(
                f"line {line} has {len(record)} fields, the header has {len(header)}", "csv"
            )
    return RawTable(
        header=header,
        rows=[record for _, record in records[1:]],
        lines=[line for line, _ in records[1:]],
    )
