"""Hysteresis: N drifted evaluations in a row to fire, N clean ones to clear."""

from collections.abc import Sequence

import pytest

from modelops.core.drift import Hysteresis


def run(verdicts: Sequence[bool | None], consecutive: int, start: Hysteresis | None = None) -> str:
    """The firing state after each verdict, as a string of F (firing) and . (not firing)."""
    state = start or Hysteresis()
    trace = ""
    for verdict in verdicts:
        state = state.step(verdict, consecutive)
        trace += "F" if state.firing else "."
    return trace


D, C, N = True, False, None


@pytest.mark.parametrize(
    ("verdicts", "consecutive", "expected"),
    [
        ([D, D, D, D], 3, "..FF"),
        ([D, D, C, D, D, D], 3, ".....F"),  # a clean window breaks the streak
        ([D, D, D, C, C, D, C, C, C], 3, "..FFFFFF."),  # clearing needs 3 clean in a row
        ([D, N, D, N, N, D], 3, ".....F"),  # insufficient data neither counts nor breaks
        ([D, D, D, N, N, N, N, C], 3, "..FFFFFF"),  # a quiet night does not clear
        ([D, C, D, C], 1, "F.F."),
        ([C, C, C], 2, "..."),
    ],
)
def test_sequences(verdicts: list[bool | None], consecutive: int, expected: str) -> None:
    assert run(verdicts, consecutive) == expected


def test_seeded_from_an_existing_condition() -> None:
    assert run([C, C], 2, start=Hysteresis(firing=True)) == "F."


def test_streak_is_visible_and_state_immutable() -> None:
    start = Hysteresis()
    after = start.step(True, 3)
    assert start == Hysteresis(firing=False, streak=0)
    assert after == Hysteresis(firing=False, streak=1)
    assert after.step(None, 3) is after


def test_consecutive_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Hysteresis().step(True, 0)
