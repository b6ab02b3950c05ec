"""The pure rules of session facts (services/feedback/attendance.py): a session's status only
moves forward, the same fact again changes nothing, a disagreeing or backward fact is refused
naming the field and rule, and ``session.completed`` goes out once, at the first reported
attended or missed fact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.feedback.attendance import (
    OUTCOMES,
    Decision,
    Fact,
    Refusal,
    Stored,
    accepts_facts,
    decide,
    implied_by_response,
    notice_hours,
)

AT = datetime(2026, 12, 8, 16, 0, tzinfo=UTC)


def test_a_first_fact_is_recorded_and_an_attended_or_missed_one_completes_the_session() -> None:
    assert decide(None, Fact("scheduled", AT)) == Decision("record", completes=False)
    assert decide(None, Fact("attended", AT)) == Decision("record", completes=True)
    assert decide(None, Fact("missed", AT)) == Decision("record", completes=True)
    assert decide(None, Fact("cancelled_by_client", AT)) == Decision("record", completes=False)
    assert decide(None, Fact("cancelled_by_clinic", AT)) == Decision("record", completes=False)


def test_a_first_outcome_without_a_time_is_refused_naming_at() -> None:
    refusal = decide(None, Fact("attended"))
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.rule) == ("at", "required_when_not_scheduled")


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_a_scheduled_session_moves_forward_to_each_outcome(outcome: str) -> None:
    decision = decide(Stored("scheduled", AT), Fact(outcome))  # type: ignore[arg-type]
    assert decision == Decision("record", completes=outcome in ("attended", "missed"))


@pytest.mark.parametrize("status", ("scheduled", *OUTCOMES))
def test_the_same_fact_again_changes_nothing(status: str) -> None:
    assert decide(Stored(status, AT), Fact(status, AT)) == Decision("repeat")  # type: ignore[arg-type]
    if status != "scheduled":  # an outcome's details do not make it another fact
        later = Fact(status, AT + timedelta(minutes=5))  # type: ignore[arg-type]
        assert decide(Stored(status, AT), later) == Decision("repeat")  # type: ignore[arg-type]


def test_scheduling_again_for_another_time_is_refused() -> None:
    refusal = decide(Stored("scheduled", AT), Fact("scheduled", AT + timedelta(hours=1)))
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.rule) == ("scheduled_for", "differs_from_stored")


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_an_outcome_cannot_go_back_to_scheduled(outcome: str) -> None:
    refusal = decide(Stored(outcome, AT), Fact("scheduled", AT))  # type: ignore[arg-type]
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.rule) == ("status", "goes_backwards")


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_scheduled_fact_a_session_had_is_the_same_fact_after_its_outcome(
    outcome: str,
) -> None:
    stored = Stored(outcome, AT + timedelta(minutes=10), scheduled_for=AT)  # type: ignore[arg-type]
    assert decide(stored, Fact("scheduled", AT)) == Decision("repeat")
    refusal = decide(stored, Fact("scheduled", AT + timedelta(days=7)))
    assert isinstance(refusal, Refusal) and refusal.rule == "goes_backwards"


@pytest.mark.parametrize("stored", OUTCOMES)
@pytest.mark.parametrize("reported", OUTCOMES)
def test_an_outcome_that_disagrees_with_the_stored_one_is_refused(
    stored: str, reported: str
) -> None:
    decision = decide(Stored(stored, AT), Fact(reported, AT))  # type: ignore[arg-type]
    if stored == reported:
        assert decision == Decision("repeat")
    else:
        assert isinstance(decision, Refusal)
        assert (decision.field, decision.rule) == ("status", "disagrees_with_stored")


def test_reporting_an_attendance_feedback_implied_completes_the_session_once() -> None:
    implied = Stored("attended", AT, implied_by_feedback=True)
    assert decide(implied, Fact("attended")) == Decision("confirm", completes=True)
    assert decide(Stored("attended", AT), Fact("attended")) == Decision("repeat")
    refusal = decide(implied, Fact("missed", AT))
    assert isinstance(refusal, Refusal) and refusal.rule == "disagrees_with_stored"


def test_only_a_session_not_reported_or_only_scheduled_is_implied_by_a_response() -> None:
    assert implied_by_response(None)
    assert implied_by_response(Stored("scheduled", AT))
    for outcome in OUTCOMES:
        assert not implied_by_response(Stored(outcome, AT))


@pytest.mark.parametrize(
    ("phase", "accepts"),
    [
        ("referred", True),
        ("matched", True),
        ("active", True),
        ("closing", True),
        ("dropped_out", True),  # a returning client
        ("closed", False),
        ("withdrawn", False),
        ("transferred", False),
    ],
)
def test_ended_episodes_take_no_new_facts(phase: str, accepts: bool) -> None:
    assert accepts_facts(phase) is accepts


def test_notice_is_counted_in_whole_hours_before_the_session() -> None:
    assert notice_hours(AT, AT - timedelta(hours=24)) == 24
    assert notice_hours(AT, AT - timedelta(hours=23, minutes=59)) == 23
    assert notice_hours(AT, AT - timedelta(minutes=59)) == 0
    assert notice_hours(AT, AT + timedelta(hours=1)) == 0  # cancelled after it began
