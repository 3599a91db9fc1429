"""core.conditions: the one helper that sets conditions. Pure, so no mocks."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelops.api import Condition, ConditionStatus
from modelops.core.conditions import find_condition, is_condition_true, set_condition

T0 = datetime(2026, 11, 28, 6, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
NAIVE = datetime(2026, 11, 28)  # noqa: DTZ001 - the naive datetime under test
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def cond(type_: str, status: ConditionStatus, at: datetime = T0, reason: str = "Old") -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message="",
        observed_generation=1,
        last_transition_time=at,
    )


@pytest.mark.parametrize(
    ("before", "status", "want_time"),
    [
        pytest.param([], TRUE, T1, id="new-type-starts-now"),
        pytest.param([cond("Ready", TRUE)], TRUE, T0, id="same-status-keeps-time"),
        pytest.param([cond("Ready", FALSE)], TRUE, T1, id="flip-false-true-moves-time"),
        pytest.param([cond("Ready", TRUE)], FALSE, T1, id="flip-true-false-moves-time"),
        pytest.param([cond("Ready", UNKNOWN)], TRUE, T1, id="unknown-to-true-moves-time"),
        pytest.param([cond("Ready", TRUE)], UNKNOWN, T1, id="true-to-unknown-moves-time"),
    ],
)
def test_last_transition_time_moves_only_on_a_status_flip(before, status, want_time):
    after = set_condition(
        before, "Ready", status, reason="New", message="m", observed_generation=2, now=T1
    )
    (ready,) = after
    assert ready.status is status
    assert ready.last_transition_time == want_time
    assert (ready.reason, ready.message, ready.observed_generation) == ("New", "m", 2)


def test_replaces_in_place_and_keeps_other_types():
    before = [cond("Ready", TRUE), cond("Progressing", TRUE), cond("Degraded", FALSE)]
    after = set_condition(
        before, "Progressing", FALSE, reason="Done", observed_generation=3, now=T1
    )
    assert [c.type for c in after] == ["Ready", "Progressing", "Degraded"]
    assert after[0] == before[0]
    assert after[2] == before[2]
    assert after[1].status is FALSE
    assert after[1].last_transition_time == T1


def test_appends_a_new_type_at_the_end():
    before = [cond("Ready", TRUE)]
    after = set_condition(
        before, "Degraded", FALSE, reason="Healthy", observed_generation=1, now=T1
    )
    assert [c.type for c in after] == ["Ready", "Degraded"]


def test_does_not_modify_its_input():
    before = [cond("Ready", FALSE)]
    snapshot = list(before)
    after = set_condition(before, "Ready", TRUE, reason="Up", observed_generation=2, now=T1)
    assert before == snapshot
    assert after is not before


def test_setting_the_same_values_returns_an_equal_list():
    before = set_condition([], "Ready", TRUE, reason="Up", observed_generation=1, now=T0)
    again = set_condition(before, "Ready", TRUE, reason="Up", observed_generation=1, now=T1)
    assert again == before


def test_now_is_stored_in_utc_whole_seconds():
    plus_two = timezone(timedelta(hours=2))
    now = datetime(2026, 11, 28, 8, 0, 0, 987654, tzinfo=plus_two)
    (ready,) = set_condition([], "Ready", TRUE, reason="Up", observed_generation=1, now=now)
    assert ready.last_transition_time == datetime(2026, 11, 28, 6, 0, 0, tzinfo=UTC)
    assert ready.to_dict()["lastTransitionTime"] == "2026-11-28T06:00:00Z"


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        set_condition([], "Ready", TRUE, reason="Up", observed_generation=1, now=NAIVE)


def test_wire_form_follows_the_kubernetes_conventions():
    (ready,) = set_condition(
        [], "Ready", FALSE, reason="NoVersion", message="none", observed_generation=4, now=T0
    )
    assert ready.to_dict() == {
        "type": "Ready",
        "status": "False",
        "observedGeneration": 4,
        "lastTransitionTime": "2026-11-28T06:00:00Z",
        "reason": "NoVersion",
        "message": "none",
    }


@pytest.mark.parametrize(
    ("conditions", "type_", "found", "true"),
    [
        pytest.param([], "Ready", False, False, id="empty"),
        pytest.param([cond("Ready", TRUE)], "Ready", True, True, id="true"),
        pytest.param([cond("Ready", FALSE)], "Ready", True, False, id="false"),
        pytest.param([cond("Ready", UNKNOWN)], "Ready", True, False, id="unknown"),
        pytest.param([cond("Degraded", TRUE)], "Ready", False, False, id="other-type"),
    ],
)
def test_readers(conditions, type_, found, true):
    assert (find_condition(conditions, type_) is not None) is found
    assert is_condition_true(conditions, type_) is true
