"""The one place that sets status conditions, following the Kubernetes API conventions.

Every kind reports its state as a list of conditions keyed by ``type`` (see docs/api.md). All
operator code changes that list through :func:`set_condition`, so the rules hold everywhere:
one entry per type, ``lastTransitionTime`` moves only when ``status`` flips, and every entry
says which ``metadata.generation`` it was computed from. Pure functions: the clock is a
parameter and the input is never modified.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from modelops.api import Condition, ConditionStatus


def set_condition(
    conditions: Sequence[Condition],
    condition_type: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str = "",
    observed_generation: int,
    now: datetime,
) -> list[Condition]:
    """Return a copy of ``conditions`` with the ``condition_type`` entry set as given.

    An existing entry of that type is replaced where it stands, keeping its
    ``lastTransitionTime`` if ``status`` did not change (a new reason, message or generation is
    not a transition); a new type is appended with ``lastTransitionTime = now``. Setting a
    condition to what it already is returns an equal list, so callers can compare before
    patching.

    ``now`` must be timezone-aware; it is stored in UTC and truncated to whole seconds, the
    precision at which the API server keeps timestamps, so a status read back compares equal.
    Raises ``ValueError`` for a naive ``now``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    timestamp = now.astimezone(UTC).replace(microsecond=0)
    previous = find_condition(conditions, condition_type)
    updated = Condition(
        type=condition_type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=(
            previous.last_transition_time
            if previous is not None and previous.status == status
            else timestamp
        ),
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == condition_type else c for c in conditions]


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """Return the condition of ``condition_type``, or None if the list has none."""
    return next((c for c in conditions if c.type == condition_type), None)


def is_condition_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    """Return whether the condition of ``condition_type`` exists with status True.

    A missing condition is not true: an object nobody has reconciled yet is not Ready.
    """
    condition = find_condition(conditions, condition_type)
    return condition is not None and condition.status is ConditionStatus.TRUE


def set_kstatus(
    conditions: Sequence[Condition],
    *,
    reconciling: tuple[str, str] | None,
    stalled: tuple[str, str] | None,
    observed_generation: int,
    now: datetime,
) -> list[Condition]:
    """Set the kstatus conditions ``Reconciling`` and ``Stalled`` (read by Flux and other
    kstatus-based tools): True with the given (reason, message), or False when None."""
    out = list(conditions)
    for condition_type, value in (("Reconciling", reconciling), ("Stalled", stalled)):
        reason, message = value or ("AsExpected", "")
        out = set_condition(
            out,
            condition_type,
            ConditionStatus.TRUE if value else ConditionStatus.FALSE,
            reason=reason,
            message=message,
            observed_generation=observed_generation,
            now=now,
        )
    return out
