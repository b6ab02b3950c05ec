"""Rules 14 (missed_sessions) and 15 (no_contact) and rule 10's attendance factors, at each
threshold: one missed session vs two, cancellations ignored, an attended session resolves;
day 20 vs day 21 after the last contact (site-local, across a change to summer time), a contact
resolves no_contact, a drop-out leaves it open; the due checks the service and the replay pend.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.analytics.domain import (
    DROPOUT_RISK,
    MISSED_SESSIONS,
    NO_CONTACT,
    AlertChange,
    DropoutWeights,
    EpisodeState,
    RuleConfig,
    SessionFact,
    due_checks,
    fire,
    latest_session,
    on_phase,
    on_session,
)
from tests.unit.analytics.builders import START, Episode

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


class Attending(Episode):
    """An episode fed session facts and feedback records, with a clock."""

    def fact(
        self, session: int, status: str, at: datetime | None = None, *, implied: bool = False
    ) -> list[AlertChange]:
        when = at or START + timedelta(days=7 * (session - 1))
        fact = SessionFact(self.episode_id, "site-a", "th-1", session, status, when, implied)
        self.state, changes = on_session(self.state, fact, self.config)
        self.changes.extend(changes)
        return changes

    def due(self, zone: ZoneInfo = UTC_ZONE) -> dict[str, datetime]:
        assert self.state is not None
        return due_checks(self.state, self.config, zone)

    def tick(self, kind: str, now: datetime, zone: ZoneInfo = UTC_ZONE) -> list[AlertChange]:
        assert self.state is not None
        changes = fire(self.state, kind, now, self.config, zone)
        self.changes.extend(changes)
        return changes


def _kinds(changes: list[AlertChange]) -> list[tuple[str, str, int]]:
    return [(c.action, c.kind, c.session) for c in changes]


# --- rule 14: missed_sessions ---------------------------------------------------------------


def test_one_missed_session_is_not_yet_an_alert_and_two_in_a_row_are() -> None:
    episode = Attending()
    episode.fact(1, "attended")
    assert episode.fact(2, "missed") == []

    changes = episode.fact(3, "missed")

    assert _kinds(changes) == [("open", MISSED_SESSIONS, 3)]
    alert = changes[0]
    assert (alert.severity, alert.rule) == ("routine", "rule-14-missed-sessions")
    assert alert.inputs == {"missed_in_a_row": 2, "missed_sessions_run": 2}
    assert alert.suggestion_code == "reach_out_about_missed_sessions"
    assert alert.triggered_by == "attendance"


def test_a_third_missed_session_does_not_open_a_second_alert() -> None:
    episode = Attending()
    for session in (1, 2, 3):
        episode.fact(session, "missed")
    assert [c.session for c in episode.opened(MISSED_SESSIONS)] == [2]


@pytest.mark.parametrize("cancelled", ["cancelled_by_client", "cancelled_by_clinic"])
def test_cancellations_neither_count_nor_break_the_run(cancelled: str) -> None:
    counted = Attending()
    counted.fact(1, cancelled)
    counted.fact(2, cancelled)
    assert counted.opened(MISSED_SESSIONS) == []  # two cancellations are no missed sessions

    bridged = Attending()
    bridged.fact(1, "missed")
    bridged.fact(2, cancelled)
    changes = bridged.fact(3, "missed")
    assert _kinds(changes) == [("open", MISSED_SESSIONS, 3)]


def test_an_attended_session_between_breaks_the_run() -> None:
    episode = Attending()
    episode.fact(1, "missed")
    episode.fact(2, "attended")
    assert episode.fact(3, "missed") == []


def test_the_run_is_by_session_number_not_by_arrival() -> None:
    """Session 3 reported missed before session 2: missed, missed is the run."""
    episode = Attending()
    episode.fact(1, "attended")
    episode.fact(3, "missed")
    assert _kinds(episode.fact(2, "missed")) == [("open", MISSED_SESSIONS, 2)]


def test_the_next_attended_session_resolves_it() -> None:
    episode = Attending()
    episode.fact(1, "missed")
    episode.fact(2, "missed")
    assert episode.fact(3, "cancelled_by_client") == []

    changes = episode.fact(4, "attended")

    assert _kinds(changes) == [("resolve", MISSED_SESSIONS, 4)]
    assert changes[0].opened_session == 2
    assert episode.state is not None and MISSED_SESSIONS not in {
        a.kind for a in episode.state.open_alerts.values()
    }


def test_a_feedback_response_for_a_later_session_implies_it_attended_and_resolves() -> None:
    episode = Attending()
    episode.fact(1, "missed")
    episode.fact(2, "missed")

    changes = episode.add(3, "srs", "38.0")

    assert ("resolve", MISSED_SESSIONS, 3) in _kinds(changes)


def test_a_repeated_fact_changes_nothing_and_scheduled_never_moves_a_session_back() -> None:
    episode = Attending()
    episode.fact(1, "missed")
    episode.fact(2, "missed")
    assert episode.fact(2, "missed") == []
    assert episode.fact(2, "scheduled") == []
    assert episode.state is not None and episode.state.attendance.sessions[2] == "missed"


def test_a_site_can_ask_for_three_missed_sessions() -> None:
    episode = Attending(RuleConfig.for_site({"missed_sessions_run": 3}))
    episode.fact(1, "missed")
    episode.fact(2, "missed")
    assert episode.opened(MISSED_SESSIONS) == []
    assert _kinds(episode.fact(3, "missed")) == [("open", MISSED_SESSIONS, 3)]


# --- rule 15: no_contact --------------------------------------------------------------------


def test_no_contact_falls_due_at_the_midnight_beginning_day_21_after_the_last_contact() -> None:
    episode = Attending()
    contact = datetime(2026, 2, 2, 15, 30, tzinfo=UTC)
    episode.fact(1, "attended", contact)

    assert episode.due()[NO_CONTACT] == datetime(2026, 2, 23, 0, 0, tzinfo=UTC)


def test_day_20_is_not_yet_and_day_21_fires() -> None:
    episode = Attending()
    episode.fact(1, "attended", datetime(2026, 2, 2, 15, 30, tzinfo=UTC))

    day_20_late = datetime(2026, 2, 22, 23, 59, 59, tzinfo=UTC)
    assert episode.tick(NO_CONTACT, day_20_late) == []

    changes = episode.tick(NO_CONTACT, datetime(2026, 2, 23, 0, 0, tzinfo=UTC))

    assert _kinds(changes) == [("open", NO_CONTACT, 1)]
    alert = changes[0]
    assert (alert.severity, alert.rule) == ("high", "rule-15-no-contact")
    assert alert.inputs == {"days_without_contact": 21, "no_contact_days": 21}
    assert alert.triggered_by == "clock"
    # fired: nothing more to pend for it, and firing again opens nothing
    assert NO_CONTACT not in episode.due()
    assert episode.tick(NO_CONTACT, datetime(2026, 3, 1, tzinfo=UTC)) == []


def test_days_are_counted_on_the_sites_calendar_across_the_change_to_summer_time() -> None:
    """Berlin, contact 10 March 2026 at 23:30 local (22:30 UTC); summer time begins 29 March.
    Day 21 begins at local midnight on 31 March = 22:00 UTC on the 30th (not 23:00, and not the
    UTC date's 31 March)."""
    episode = Attending()
    episode.fact(1, "attended", datetime(2026, 3, 10, 22, 30, tzinfo=UTC))

    assert episode.due(BERLIN)[NO_CONTACT] == datetime(2026, 3, 30, 22, 0, tzinfo=UTC)
    assert episode.tick(NO_CONTACT, datetime(2026, 3, 30, 21, 59, 59, tzinfo=UTC), BERLIN) == []
    changes = episode.tick(NO_CONTACT, datetime(2026, 3, 30, 22, 0, tzinfo=UTC), BERLIN)
    assert _kinds(changes) == [("open", NO_CONTACT, 1)]


def test_a_contact_since_makes_the_check_stale_and_moves_the_due_time() -> None:
    episode = Attending()
    episode.fact(1, "attended", datetime(2026, 2, 2, 10, tzinfo=UTC))
    episode.add(2, "srs", "38.0", at=datetime(2026, 2, 9, 10, tzinfo=UTC))

    assert episode.tick(NO_CONTACT, datetime(2026, 2, 23, 0, 0, tzinfo=UTC)) == []
    assert episode.due()[NO_CONTACT] == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def test_the_alert_carries_the_latest_session_number() -> None:
    episode = Attending()
    episode.fact(1, "attended")
    episode.add(2, "srs", "38.0")
    episode.fact(3, "missed")
    episode.fact(4, "cancelled_by_clinic")
    assert episode.state is not None and latest_session(episode.state) == 4

    changes = episode.tick(NO_CONTACT, START + timedelta(days=60))

    assert _kinds(changes) == [("open", NO_CONTACT, 4)]


@pytest.mark.parametrize("contact", ["attended", "feedback"])
def test_the_next_contact_resolves_no_contact(contact: str) -> None:
    episode = Attending()
    episode.fact(1, "attended")
    episode.tick(NO_CONTACT, START + timedelta(days=30))
    later = START + timedelta(days=31)

    changes = (
        episode.fact(2, "attended", later)
        if contact == "attended"
        else episode.add(2, "srs", "38.0", at=later)
    )

    assert ("resolve", NO_CONTACT, 2) in _kinds(changes)
    assert NO_CONTACT in episode.due()  # pending again from the new contact


def test_a_missed_session_or_a_cancellation_is_no_contact() -> None:
    episode = Attending()
    episode.fact(1, "attended")
    episode.tick(NO_CONTACT, START + timedelta(days=22))
    assert NO_CONTACT not in [c.kind for c in episode.fact(2, "missed", START + timedelta(22))]
    assert episode.fact(3, "cancelled_by_client", START + timedelta(days=23)) == []
    assert [a.kind for a in episode.open_now(NO_CONTACT)] == [NO_CONTACT]


def test_a_dropped_out_episode_keeps_no_contact_open_and_pends_nothing_more() -> None:
    episode = Attending()
    episode.fact(1, "attended")
    episode.tick(NO_CONTACT, START + timedelta(days=22))
    assert episode.state is not None

    assert on_phase(episode.state, "dropped_out") == []

    assert len(episode.open_now(NO_CONTACT)) == 1
    assert episode.due() == {}


def test_a_client_who_returns_resolves_it_and_is_followed_again() -> None:
    episode = Attending()
    episode.fact(1, "attended")
    episode.tick(NO_CONTACT, START + timedelta(days=22))
    assert episode.state is not None
    on_phase(episode.state, "dropped_out")

    changes = episode.fact(2, "attended", START + timedelta(days=40))
    on_phase(episode.state, "active")

    assert ("resolve", NO_CONTACT, 2) in _kinds(changes)
    assert episode.due()[NO_CONTACT] == START.replace(hour=0) + timedelta(days=61)


@pytest.mark.parametrize(
    ("phase", "followed"),
    [
        (None, True),
        ("matched", True),
        ("active", True),
        ("closing", False),
        ("closed", False),
        ("dropped_out", False),
        ("transferred", False),
        ("withdrawn", False),
    ],
)
def test_which_phases_are_followed_for_silence(phase: str | None, followed: bool) -> None:
    episode = Attending()
    episode.fact(1, "attended")
    assert episode.state is not None
    if phase is not None:
        on_phase(episode.state, phase)
    assert (NO_CONTACT in episode.due()) is followed
    fired = episode.tick(NO_CONTACT, START + timedelta(days=30))
    assert bool(fired) is followed


def test_an_episode_without_any_contact_is_not_followed() -> None:
    episode = Attending()
    episode.fact(1, "missed")
    assert episode.state is not None
    on_phase(episode.state, "matched")
    assert episode.due() == {}
    assert episode.tick(NO_CONTACT, START + timedelta(days=60)) == []


def test_a_late_feedback_response_answered_before_the_last_contact_is_no_new_contact() -> None:
    episode = Attending()
    episode.fact(2, "attended", START + timedelta(days=7))
    episode.add(1, "srs", "38.0", at=START)
    assert episode.state is not None
    assert episode.state.attendance.last_contact == START + timedelta(days=7)


def test_a_site_can_set_its_own_number_of_days() -> None:
    episode = Attending(RuleConfig.for_site({"no_contact_days": 14}))
    episode.fact(1, "attended", datetime(2026, 2, 2, 10, tzinfo=UTC))
    assert episode.due()[NO_CONTACT] == datetime(2026, 2, 16, tzinfo=UTC)


def test_a_check_of_an_unknown_kind_is_a_programming_error() -> None:
    episode = Attending()
    episode.fact(1, "attended")
    with pytest.raises(ValueError, match="no time-driven check"):
        episode.tick("rupture", START + timedelta(days=30))


def test_the_state_with_attendance_survives_json() -> None:
    episode = Attending()
    episode.fact(1, "attended")
    episode.fact(2, "missed")
    episode.fact(3, "missed")
    episode.tick(NO_CONTACT, START + timedelta(days=40))
    assert episode.state is not None

    again = EpisodeState.from_json(episode.state.to_json())

    assert again.to_json() == episode.state.to_json()
    assert again.attendance.sessions == {1: "attended", 2: "missed", 3: "missed"}
    assert {a.kind for a in again.open_alerts.values()} >= {MISSED_SESSIONS, NO_CONTACT}


def test_a_state_saved_before_attendance_reads_as_no_attendance() -> None:
    episode = Attending()
    episode.add(1, "srs", "38.0")
    assert episode.state is not None
    saved = episode.state.to_json()
    del saved["attendance"]

    again = EpisodeState.from_json(saved)

    assert again.attendance.sessions == {} and again.attendance.last_contact is None


def test_a_late_record_keeps_the_attendance_alerts_open() -> None:
    """A late feedback record rebuilds the episode from its records: the alerts about sessions
    and time are not about answers and stay as they are."""
    episode = Attending()
    episode.add(1, "srs", "38.0")
    episode.fact(3, "missed")
    episode.fact(4, "missed")
    episode.add(5, "srs", "38.0", at=START + timedelta(days=28))  # resolves missed_sessions
    episode.fact(6, "missed")
    episode.fact(7, "missed")
    episode.tick(NO_CONTACT, START + timedelta(days=80))
    open_before = {a.kind for a in episode.state.open_alerts.values()} if episode.state else set()
    assert {MISSED_SESSIONS, NO_CONTACT} <= open_before

    changes = episode.add(2, "srs", "38.0", at=START + timedelta(days=7))  # late, older contact

    assert [c for c in changes if c.kind in (MISSED_SESSIONS, NO_CONTACT)] == []
    assert episode.state is not None
    assert {MISSED_SESSIONS, NO_CONTACT} <= {a.kind for a in episode.state.open_alerts.values()}


# --- rule 10's attendance factors -----------------------------------------------------------


def test_rule_10_counts_reported_missed_sessions() -> None:
    """Four missed sessions reported: 4 points, above 3."""
    episode = Attending()
    episode.fact(1, "attended")
    for session in (2, 3, 4):
        episode.fact(session, "missed")
    assert episode.opened(DROPOUT_RISK) == []

    changes = episode.fact(5, "missed")

    assert next(c for c in changes if c.kind == DROPOUT_RISK).inputs["missed_sessions"] == 4


def test_reported_sessions_replace_the_estimate_from_gaps_between_dates() -> None:
    """Feedback five weeks apart counts 4 missed sessions when nobody reports the sessions; a
    front-end that reports them (the gap was clinic cancellations) counts none."""
    estimated = Attending()
    estimated.add(1, "srs", "40.0", at=START)
    estimated.add(2, "srs", "40.0", at=START + timedelta(days=35))
    assert len(estimated.opened(DROPOUT_RISK)) == 1

    reported = Attending()
    reported.fact(1, "attended", START)
    reported.add(1, "srs", "40.0", at=START)
    for session in (2, 3, 4, 5):
        reported.fact(session, "cancelled_by_clinic", START + timedelta(days=7 * (session - 1)))
    reported.fact(6, "attended", START + timedelta(days=35))
    reported.add(6, "srs", "40.0", at=START + timedelta(days=35))
    assert reported.opened(DROPOUT_RISK) == []


def test_rule_10_counts_intervals_without_contact_and_its_check_falls_due_when_it_tips() -> None:
    """Early low alliance (2 points): intervals without contact beyond the first add 1 each.
    2 + 1 = 3 at day 14 is not above 3; 2 + 2 = 4 at day 21 is."""
    episode = Attending()
    contact = datetime(2026, 2, 2, 10, tzinfo=UTC)
    episode.add(1, "srs", "30.0", at=contact)  # low alliance at session 1: 2 points
    assert episode.opened(DROPOUT_RISK) == []

    due = episode.due()[DROPOUT_RISK]
    assert due == datetime(2026, 2, 23, tzinfo=UTC)  # 3 intervals of 7 days
    assert episode.tick(DROPOUT_RISK, due - timedelta(seconds=1)) == []

    changes = episode.tick(DROPOUT_RISK, due)

    assert _kinds(changes) == [("open", DROPOUT_RISK, 1)]
    assert changes[0].inputs["intervals_without_contact"] == 2
    assert changes[0].inputs["score"] == 4.0
    assert DROPOUT_RISK not in episode.due()


def test_a_contact_starts_the_count_of_intervals_again() -> None:
    episode = Attending()
    episode.add(1, "srs", "30.0", at=START)
    episode.tick(DROPOUT_RISK, START + timedelta(days=21))
    assert episode.opened(DROPOUT_RISK)

    changes = episode.fact(2, "attended", START + timedelta(days=22))

    assert episode.state is not None and episode.state.attendance.intervals_without_contact == 0
    assert ("resolve", DROPOUT_RISK, 2) in _kinds(changes)


def test_no_dropout_check_without_a_weight_for_silence_or_when_it_already_holds() -> None:
    unweighted = Attending(
        RuleConfig(dropout_weights=DropoutWeights(interval_without_contact=Decimal(0)))
    )
    unweighted.add(1, "srs", "30.0")
    assert DROPOUT_RISK not in unweighted.due()

    holding = Attending()
    holding.fact(1, "attended")
    for session in (2, 3, 4, 5):
        holding.fact(session, "missed")
    assert holding.open_now(DROPOUT_RISK)
    assert DROPOUT_RISK not in holding.due()


def test_an_older_phase_change_arriving_late_does_not_undo_a_newer_one() -> None:
    """A drop-out (episode.closed) consumed after the return (episode.phase_changed) that
    followed it: the episode stays followed."""
    episode = Attending()
    episode.fact(1, "attended")
    assert episode.state is not None
    on_phase(episode.state, "active", START + timedelta(days=40))

    on_phase(episode.state, "dropped_out", START + timedelta(days=29))

    assert episode.state.attendance.phase == "active"
    assert NO_CONTACT in episode.due()
