"""The episode's phases as a state machine: every allowed move, every refused one and its rule,
contacts (first contact, return after a drop-out, late reports) and the drop-out's due time in
site-local days (27 vs 28, across a change of clocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.intake.domain.episodes import (
    FINAL_PHASES,
    MOVES,
    CloseReason,
    MoveRefused,
    PhaseMove,
    after_contact,
    after_silence,
    close,
    move,
    plan_ending,
    silence_ends,
)
from services.intake.domain.matching import SiteConfigs
from shared.contracts import EpisodePhase

PHASES: tuple[str, ...] = get_args(EpisodePhase)
REASONS = sorted({reason for reasons in MOVES.values() for reason in reasons})
BERLIN = ZoneInfo("Europe/Berlin")
TORONTO = ZoneInfo("America/Toronto")


def test_the_machine_knows_exactly_the_phases_of_the_spec() -> None:
    assert set(PHASES) == {
        "referred",
        "matched",
        "active",
        "closing",
        "closed",
        "dropped_out",
        "transferred",
        "withdrawn",
    }
    assert {phase for pair in MOVES for phase in pair} <= set(PHASES)


ALLOWED = [
    ("referred", "matched", "match_confirmed"),
    ("referred", "matched", "opened_directly"),
    ("matched", "active", "first_attended_session"),
    ("matched", "active", "first_feedback"),
    ("active", "closing", "ending_planned"),
    ("active", "dropped_out", "no_contact"),
    ("active", "dropped_out", "dropped_out"),
    ("dropped_out", "active", "returned"),
    ("matched", "closed", "completed"),
    ("matched", "withdrawn", "withdrawn"),
    ("matched", "dropped_out", "dropped_out"),
    ("active", "closed", "completed"),
    ("active", "withdrawn", "withdrawn"),
    ("closing", "closed", "completed"),
    ("closing", "withdrawn", "withdrawn"),
    ("closing", "dropped_out", "dropped_out"),
]


@pytest.mark.parametrize(("start", "end", "reason"), ALLOWED)
def test_each_allowed_move(start: str, end: str, reason: str) -> None:
    assert move(start, end, reason) == PhaseMove(start, end, reason)


def test_the_allowed_moves_are_exactly_those_listed() -> None:
    table = {(start, end, reason) for (start, end), rs in MOVES.items() for reason in rs}
    assert table == set(ALLOWED)


REFUSED = [
    (start, end, reason)
    for start in PHASES
    for end in PHASES
    for reason in REASONS
    if (start, end, reason) not in set(ALLOWED)
]


@pytest.mark.parametrize(("start", "end", "reason"), REFUSED)
def test_every_other_move_is_refused_with_its_rule(start: str, end: str, reason: str) -> None:
    with pytest.raises(MoveRefused) as refused:
        move(start, end, reason)
    if (start, end) in MOVES:
        expected = "reason"
    elif start in {"closed", "withdrawn", "transferred", "dropped_out"}:
        expected = "already_closed"
    else:
        expected = "not_active"
    assert refused.value.rule == expected
    assert start in str(refused.value) and end in str(refused.value)


@pytest.mark.parametrize("phase", sorted(FINAL_PHASES))
def test_nothing_leaves_a_final_phase(phase: str) -> None:
    assert not [pair for pair in MOVES if pair[0] == phase]


def test_transferred_is_final_and_never_entered_a_rematch_keeps_the_phase() -> None:
    assert "transferred" in FINAL_PHASES
    assert not [pair for pair in MOVES if pair[1] == "transferred"]


@pytest.mark.parametrize("phase", ["matched", "active", "closing"])
@pytest.mark.parametrize(
    ("reason", "end"),
    [("completed", "closed"), ("dropped_out", "dropped_out"), ("withdrawn", "withdrawn")],
)
def test_staff_close_any_open_episode(phase: str, reason: CloseReason, end: str) -> None:
    assert close(phase, reason) == PhaseMove(phase, end, reason)


@pytest.mark.parametrize("phase", ["closed", "dropped_out", "withdrawn", "transferred"])
@pytest.mark.parametrize("reason", get_args(CloseReason))
def test_closing_a_closed_episode_is_refused(phase: str, reason: CloseReason) -> None:
    with pytest.raises(MoveRefused) as refused:
        close(phase, reason)
    assert refused.value.rule == "already_closed"


def test_only_an_active_episode_can_plan_its_end() -> None:
    assert plan_ending("active") == PhaseMove("active", "closing", "ending_planned")
    for phase, rule in (
        ("referred", "not_active"),
        ("matched", "not_active"),
        ("closing", "not_active"),
        ("closed", "already_closed"),
        ("dropped_out", "already_closed"),
        ("withdrawn", "already_closed"),
        ("transferred", "already_closed"),
    ):
        with pytest.raises(MoveRefused) as refused:
            plan_ending(phase)
        assert refused.value.rule == rule, phase


# --- contacts and silence ---------------------------------------------------------------------

CONTACT = datetime(2026, 1, 5, 16, 30, tzinfo=UTC)  # a Monday afternoon in Berlin (17:30)


def contact(phase: str, last: datetime | None, at: datetime, now: datetime, kind: str = "feedback"):  # type: ignore[no-untyped-def]
    return after_contact(phase, last, at, kind, now, 28, BERLIN)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("attended_session", "first_attended_session"), ("feedback", "first_feedback")],
)
def test_the_first_contact_makes_a_matched_episode_active(kind: str, reason: str) -> None:
    outcome = contact("matched", None, CONTACT, CONTACT, kind)
    assert outcome.move == PhaseMove("matched", "active", reason)
    assert outcome.last_contact == CONTACT
    assert outcome.silence_ends == silence_ends(CONTACT, 28, BERLIN)
    assert outcome.gap_days is None


def test_a_later_contact_pushes_the_silence_back_an_older_one_does_not() -> None:
    later = CONTACT + timedelta(days=10)
    pushed = contact("active", CONTACT, later, later)
    assert pushed.move is None and pushed.last_contact == later
    assert pushed.silence_ends == silence_ends(later, 28, BERLIN)
    late_report = contact("active", later, CONTACT, later)
    assert late_report.last_contact == later
    assert late_report.silence_ends == silence_ends(later, 28, BERLIN)


@pytest.mark.parametrize("phase", ["closing", "closed", "withdrawn", "transferred"])
def test_a_contact_keeps_other_phases_and_watches_nothing(phase: str) -> None:
    outcome = contact(phase, CONTACT, CONTACT + timedelta(days=3), CONTACT + timedelta(days=3))
    assert outcome.move is None
    assert outcome.silence_ends is None


def test_a_client_who_returns_after_a_drop_out_is_active_again_with_the_gap() -> None:
    back = datetime(2026, 2, 20, 8, 0, tzinfo=UTC)  # 46 Berlin days after the 5th of January
    outcome = contact("dropped_out", CONTACT, back, back, "attended_session")
    assert outcome.move == PhaseMove("dropped_out", "active", "returned")
    assert outcome.gap_days == 46
    assert outcome.silence_ends == silence_ends(back, 28, BERLIN)


def test_a_late_report_of_a_session_followed_by_a_full_silence_leaves_it_dropped_out() -> None:
    # Dropped out after the contact of the 5th; a session of the 10th is reported on the 9th
    # of March: its own silence ended on the 7th of February, so nobody returned.
    reported = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    outcome = contact("dropped_out", CONTACT, CONTACT + timedelta(days=5), reported)
    assert outcome.move is None and outcome.silence_ends is None
    assert outcome.last_contact == CONTACT + timedelta(days=5)


def test_a_late_report_that_ends_the_silence_is_a_return() -> None:
    # Dropped out at the 2nd of February's midnight; on the 3rd a session of the 1st is
    # reported: the client was seen within 28 days after all.
    session = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
    outcome = contact("dropped_out", CONTACT, session, datetime(2026, 2, 3, 9, 0, tzinfo=UTC))
    assert outcome.move == PhaseMove("dropped_out", "active", "returned")
    assert outcome.gap_days == 27


def test_the_drop_out_falls_due_at_the_site_midnight_28_days_after_the_contact_date() -> None:
    # A contact on Monday the 5th (any hour) with 28 days: Monday 2nd of February, 00:00 Berlin.
    assert silence_ends(CONTACT, 28, BERLIN) == datetime(2026, 2, 1, 23, 0, tzinfo=UTC)
    late_evening = datetime(2026, 1, 5, 22, 59, tzinfo=UTC)  # 23:59 in Berlin, same date
    assert silence_ends(late_evening, 28, BERLIN) == silence_ends(CONTACT, 28, BERLIN)
    next_day = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)  # already the 6th in Berlin
    assert silence_ends(next_day, 28, BERLIN) == datetime(2026, 2, 2, 23, 0, tzinfo=UTC)


def test_day_27_of_silence_is_not_yet_a_drop_out_day_28_is() -> None:
    due = silence_ends(CONTACT, 28, BERLIN)
    day_27_last_moment = due - timedelta(microseconds=1)
    assert after_silence("active", CONTACT, day_27_last_moment, 28, BERLIN) == due
    assert after_silence("active", CONTACT, due, 28, BERLIN) == PhaseMove(
        "active", "dropped_out", "no_contact"
    )


def test_the_site_days_count_across_the_spring_change_of_clocks() -> None:
    # Contact on the 3rd of March; Berlin moves to summer time on the 29th: the 31st begins at
    # 22:00 UTC on the 30th (not 23:00), and Toronto's (summer time since the 8th) at 04:00.
    at = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    assert silence_ends(at, 28, BERLIN) == datetime(2026, 3, 30, 22, 0, tzinfo=UTC)
    assert silence_ends(at, 28, TORONTO) == datetime(2026, 3, 31, 4, 0, tzinfo=UTC)


def test_the_number_of_days_is_the_sites() -> None:
    due_21 = after_silence("active", CONTACT, silence_ends(CONTACT, 21, BERLIN), 21, BERLIN)
    assert isinstance(due_21, PhaseMove)
    assert after_silence("active", CONTACT, silence_ends(CONTACT, 21, BERLIN), 28, BERLIN) == (
        silence_ends(CONTACT, 28, BERLIN)
    )


@pytest.mark.parametrize("phase", ["matched", "closing", "closed", "dropped_out", "withdrawn"])
def test_only_an_active_episode_drops_out_by_silence(phase: str) -> None:
    assert after_silence(phase, CONTACT, CONTACT + timedelta(days=90), 28, BERLIN) is None


def test_the_drop_out_days_are_set_per_site_in_the_matching_file() -> None:
    configs = SiteConfigs.from_document(
        {"default": {"dropout_after_days": 35}, "sites": {"site-b": {"dropout_after_days": 21}}}
    )
    assert SiteConfigs().for_site("site-a").dropout_after_days == 28
    assert configs.for_site("site-a").dropout_after_days == 35
    assert configs.for_site("site-b").dropout_after_days == 21
    with pytest.raises(ValidationError) as refused:
        SiteConfigs.from_document({"sites": {"site-b": {"dropout_after_days": 0}}})
    assert refused.value.errors()[0]["loc"] == ("dropout_after_days",)
