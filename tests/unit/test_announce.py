"""At-least-once announcements (issue 11.14): the intent goes into the status write that
records the decision, and stays there until it settles. Pure; no cluster."""

from __future__ import annotations

from datetime import UTC, datetime

from modelops.core import announce
from modelops.core.plan import EventSpec, Notification, ObjectRef, Plan, StatusPatch

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
REF = ObjectRef("modelops.dev/v1alpha1", "Model", "ml", "iris")
PROMOTED = EventSpec("Normal", "Promoted", "Promoted 2 to production (was 1)")
NOTICE = Notification("dev.modelops.model.promoted", "ml/iris", {"from": "1", "to": "2"})


def _decide(live_status: dict[str, object]) -> tuple[Plan, announce.Pending]:
    plan = Plan(
        status=(StatusPatch(REF, {"productionVersion": "2"}),),
        events=(PROMOTED,),
        notifications=(NOTICE,),
    )
    return announce.record(plan, REF, live_status, uid="u1", settled=(), now=NOW)


def test_the_intent_is_written_with_the_decision_and_sent_after() -> None:
    plan, pending = _decide({"productionVersion": "1"})
    assert plan.events == ()  # sent after the write, not by it
    assert plan.notifications == ()
    (patch,) = plan.status
    recorded = patch.status[announce.FIELD]
    assert [a["kind"] for a in recorded] == ["Event", "CloudEvent"]
    assert patch.status["productionVersion"] == "2"
    assert [e.reason for e in pending.events] == ["Promoted"]
    assert pending.notifications[0].data == {"from": "1", "to": "2"}
    assert {e.id for e in pending.events} | {n.id for n in pending.notifications} == {
        a["id"] for a in recorded
    }


def test_a_restart_before_the_send_sends_the_same_ids_again() -> None:
    """Killed after the status write: the next operator finds the intent, decides nothing
    new, and sends what is recorded, under the same ids."""
    first, sent = _decide({"productionVersion": "1"})
    written = first.status[0].status
    quiet = Plan(status=(StatusPatch(REF, {"productionVersion": "2"}),))
    again, pending = announce.record(quiet, REF, written, uid="u1", settled=set(), now=NOW)
    assert again.status[0].status == written  # the same status: the executor writes nothing
    assert pending == sent


def test_settled_announcements_leave_the_status() -> None:
    first, sent = _decide({"productionVersion": "1"})
    written = first.status[0].status
    done = {e.id for e in sent.events if e.id} | {n.id for n in sent.notifications if n.id}
    quiet = Plan(status=(StatusPatch(REF, {"productionVersion": "2"}),))
    cleared, pending = announce.record(quiet, REF, written, uid="u1", settled=done, now=NOW)
    assert pending == announce.Pending((), ())
    assert cleared.status[0].status == {"productionVersion": "2"}


def test_partly_settled_keeps_the_rest() -> None:
    first, sent = _decide({"productionVersion": "1"})
    written = first.status[0].status
    event_id = sent.events[0].id
    assert event_id is not None
    _, pending = announce.record(
        Plan(status=(StatusPatch(REF, dict(written)),)),
        REF,
        written,
        uid="u1",
        settled={event_id},
        now=NOW,
    )
    assert pending.events == ()
    assert pending.notifications == sent.notifications


def test_the_pending_list_is_bounded() -> None:
    live: dict[str, object] = {}
    for minute in range(60):
        plan = Plan(events=(EventSpec("Warning", "Failed", f"attempt {minute}"),))
        when = NOW.replace(minute=minute)
        plan, _ = announce.record(plan, REF, live, uid="u1", settled=set(), now=when)
        live = plan.status[0].status
    recorded = live[announce.FIELD]
    assert isinstance(recorded, list)
    assert len(recorded) == announce.MAX_PENDING
    assert recorded[-1]["message"] == "attempt 59"  # the oldest are given up
