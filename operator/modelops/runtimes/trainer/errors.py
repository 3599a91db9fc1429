"""The trainer's failures and their exit codes.

Exit code 2 means the data was refused: retrying with the same data cannot succeed, so the
data has to be fixed. Exit code 1 is every other failure (configuration, I/O, a bug).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

EXIT_FAILED = 1
EXIT_DATA_REFUSED = 2


class TrainerError(Exception):
    """A failure with a message fit for the termination log: one line, says what to fix."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class Violation:
    """One broken rule: what is wrong, where, and the name of the rule."""

    problem: str
    rule: str

    def __str__(self) -> str:
        return f"{self.problem} (rule: {self.rule})"


class DatasetRefusedError(TrainerError):
    """The dataset breaks its schema or cannot be trained on; nothing was written.

    The message lists every violation found, each naming the column and the rule, e.g.
    `dataset refused: column "petal_width": 3 values above max 10 (rule: max)`.
    """

    exit_code = EXIT_DATA_REFUSED

    def __init__(self, violations: Sequence[Violation]) -> None:
        super().__init__("dataset refused: " + "; ".join(str(v) for v in violations))
        self.violations = tuple(violations)

    @classmethod
    def one(cls, problem: str, rule: str) -> "DatasetRefusedError":
        """A refusal for a single violation."""
        return cls([Violation(problem, rule)])


def describe(error: ValidationError) -> str:
    """One line listing every problem pydantic found, as `location: message`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'value'}: {problem['msg']}"
        for problem in error.errors(include_url=False)
    )
