"""Hysteresis for the DriftDetected condition: N windows in a row to fire, N to clear."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Hysteresis:
    """Whether drift is firing, and how many evaluations in a row have disagreed with that.

    Immutable: :meth:`step` returns the next state. The condition fires after ``consecutive``
    drifted evaluations in a row and clears after ``consecutive`` clean ones; any evaluation
    agreeing with the current state resets the count. An evaluation with insufficient data
    (verdict None) neither counts nor breaks a streak: a quiet night does not clear an alert,
    and a streak resumes when traffic returns.

    Evaluations run every interval over a window that may be longer than the interval, so
    consecutive windows can overlap and share observations; ``consecutive`` counts
    evaluations, not disjoint windows. The state lives in operator memory; after a restart,
    seed it from the DriftDetected condition (``Hysteresis(firing=True)``) so a firing alert
    is not silently dropped.
    """

    firing: bool = False
    streak: int = 0

    def step(self, verdict: bool | None, consecutive: int) -> "Hysteresis":
        """Return the state after one evaluation whose dataset verdict is ``verdict``."""
        if consecutive < 1:
            raise ValueError(f"Consecutive windows must be at least 1, got {consecutive}")
        if verdict is None:
            return self
        if verdict == self.firing:
            return Hysteresis(self.firing, 0)
        if self.streak + 1 >= consecutive:
            return Hysteresis(verdict, 0)
        return Hysteresis(self.firing, self.streak + 1)
