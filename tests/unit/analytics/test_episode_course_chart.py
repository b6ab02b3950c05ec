"""The episode's whole story on its timeline and chart (issue 17, capability 5): how each
session turned out (attended, missed — drawn apart — and cancelled), the phase changes with
their reasons, and each alert's follow-up (first acted on, resolved, closed by a clinician),
each placed on the session axis in proportion to its time between two sessions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from services.analytics.charts import render
from services.analytics.episode_course import (
    AFTER_THE_LATEST,
    alert_marks,
    axis_position,
    phase_marks,
    session_times,
)
from services.analytics.mapping import (
    PhaseChangeOut,
    RecordedActionOut,
    SessionOut,
    TimelineAlertOut,
    TimelineOut,
    timeline_out,
)
from services.analytics.models import (
    AnalyticsEpisode,
    AnalyticsEpisodeSession,
    AnalyticsPhaseChange,
)
from services.analytics.reports import episode_chart
from tests.unit.analytics.test_episode_chart import INSTRUMENTS, alert, score

SVG = "{http://www.w3.org/2000/svg}"
MONDAY = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def week(n: int, days: float = 0) -> datetime:
    """Session ``n``'s time (weekly from MONDAY for session 1), ``days`` after it."""
    return MONDAY + timedelta(weeks=n - 1, days=days)


def sessions(*statuses: str) -> list[SessionOut]:
    return [
        SessionOut(session_number=n, status=status, at=week(n))  # type: ignore[arg-type]
        for n, status in enumerate(statuses, start=1)
    ]


def phase(to: str, at: datetime, reason: str, start: str | None = None) -> PhaseChangeOut:
    return PhaseChangeOut(from_phase=start, to_phase=to, reason=reason, at=at)


def acted(a: TimelineAlertOut, *at: datetime) -> TimelineAlertOut:
    done = [
        RecordedActionOut(code="discussed_in_session", recorded_by="th-7", recorded_at=t)
        for t in at
    ]
    return a.model_copy(update={"actions": done})


def story() -> TimelineOut:
    """Five weekly sessions (the third missed, the fourth cancelled by the client), active at
    the first; a low-alliance alert at 2, acted on two days later, resolved at 5; a rupture at 5
    still open; a no-contact alert closed by a clinician a day after session 5."""
    low = acted(alert("low_alliance", 2, resolved=5), week(2, days=2))
    quiet = alert("no_contact", 5, "high").model_copy(
        update={"status": "closed", "closed_at": week(5, days=1), "close_reason": "resolved"}
    )
    return TimelineOut(
        episode_id="ep-1",
        site_id="northside",
        therapist_id="th-007",
        phase="active",
        last_session=5,
        scores=[score(s, "srs", v) for s, v in ((1, 38.0), (2, 30.0), (5, 37.0))],
        alerts=[low, alert("rupture", 5, "high"), quiet],
        sessions=sessions("attended", "attended", "missed", "cancelled_by_client", "attended"),
        phases=[
            phase("matched", MONDAY - timedelta(days=3), "match_confirmed", "referred"),
            phase("active", week(1), "first_attended_session", "matched"),
        ],
    )


def drawn(t: TimelineOut) -> ET.Element:
    return ET.fromstring(render(episode_chart(t, INSTRUMENTS)))


def marked(root: ET.Element, kind: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == kind]


def legend(root: ET.Element) -> set[str]:
    return {
        g.get("data-marker") or "" for g in root.iter(f"{SVG}g") if g.get("class") == "legend-entry"
    }


# The session axis: where a moment falls between sessions.


@pytest.mark.parametrize(
    ("at", "position"),
    [
        (MONDAY - timedelta(days=1), 1.0),  # before the first session: at the first
        (week(1), 1.0),
        (week(2, days=3.5), 2.5),  # half-way through the week after session 2
        (week(3), 3.0),
        (week(3, days=7), 4.0),
        (week(4, days=0.001), 4.0 + AFTER_THE_LATEST),  # after the latest: half a session on
    ],
)
def test_a_moment_is_placed_between_the_sessions_it_falls_between(
    at: datetime, position: float
) -> None:
    times = session_times(sessions("attended", "attended", "missed", "attended"))

    assert axis_position(at, times) == pytest.approx(position, abs=1e-3)


def test_without_session_times_a_moment_has_no_place() -> None:
    assert axis_position(MONDAY, []) is None
    assert phase_marks([phase("active", MONDAY, "first_attended_session")], []) == []


def test_an_alerts_follow_up_is_where_it_was_acted_on_and_where_it_ended() -> None:
    times = session_times(story().sessions)

    low, quiet, rupture = sorted(alert_marks(story().alerts, times), key=lambda m: m.kind)

    assert (low.kind, low.acted_on, low.ended, low.ending) == (
        "low_alliance",
        pytest.approx(2 + 2 / 7),
        5.0,
        "resolved",
    )
    assert (quiet.kind, quiet.acted_on, quiet.ended, quiet.ending) == (
        "no_contact",
        None,
        5.0 + AFTER_THE_LATEST,
        "closed",
    )
    assert (rupture.kind, rupture.acted_on, rupture.ended) == ("rupture", None, None)


def test_an_action_before_the_opening_session_time_is_drawn_at_the_opening() -> None:
    early = acted(alert("low_alliance", 4), week(2))

    (mark,) = alert_marks([early], session_times(story().sessions))

    assert mark.acted_on == 4.0


# The chart.


def test_the_chart_marks_each_session_and_missed_apart_from_attended() -> None:
    root = drawn(story())

    drawn_sessions = {
        int(e.findtext(f"{SVG}title", "").split()[1].rstrip(":")): e
        for e in marked(root, "session")
    }
    assert {n: e.get("data-status") for n, e in drawn_sessions.items()} == {
        1: "attended",
        2: "attended",
        3: "missed",
        4: "cancelled_by_client",
        5: "attended",
    }
    missed, attended = drawn_sessions[3], drawn_sessions[1]
    assert missed.tag != attended.tag or missed.get("fill") != attended.get("fill")
    assert missed.get("stroke") == "#cf222e"  # red: did not attend
    assert {"session:attended", "session:missed", "session:cancelled_by_client"} <= legend(root)
    assert "session:cancelled_by_clinic" not in legend(root)


def test_the_chart_marks_each_phase_change_with_its_phase_and_reason() -> None:
    root = drawn(story())

    phases = marked(root, "phase")
    assert [p.get("data-phase") for p in phases] == ["matched", "active"]
    assert phases[1].findtext(f"{SVG}title") == "active (from matched: first attended session)"
    assert len(marked(root, "phase-line")) == 2 * 2  # each change across both panels
    # Both fall at session 1: one label, in order, after the last flag
    assert [t.text for t in marked(root, "phase-label")] == ["matched → active"]
    assert "phase" in legend(root)


def test_the_chart_marks_each_alerts_follow_up() -> None:
    root = drawn(story())

    (acted_on,) = marked(root, "acted-on")
    assert acted_on.findtext(f"{SVG}title") == "Low alliance: acted on"
    (resolved,) = marked(root, "resolved")
    assert resolved.findtext(f"{SVG}title") == "Low alliance: resolved (resolved at session 5)"
    (closed,) = marked(root, "closed")
    assert "No contact" in (closed.findtext(f"{SVG}title") or "")
    assert len(marked(root, "alert-course")) == 2  # the resolved and the closed, not the open
    assert {"acted-on", "resolved", "closed"} <= legend(root)
    # Each follow-up mark lies on its alert's row, after its opening mark.
    (opened,) = [e for e in marked(root, "alert") if e.get("data-kind") == "low_alliance"]
    assert float(acted_on.get("x", 0)) + 4 > float(opened.get("cx", 0))
    assert float(resolved.get("x", 0)) > float(acted_on.get("x", 0))


def test_an_episode_without_reported_sessions_says_so_and_has_no_follow_up_legend() -> None:
    bare = story().model_copy(update={"sessions": [], "phases": [], "alerts": []})

    root = drawn(bare)

    empty = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "empty"]
    assert "no sessions reported" in empty
    assert not marked(root, "session") and not marked(root, "phase")
    assert not {"acted-on", "resolved", "closed", "phase"} & legend(root)


def test_the_timeline_lists_sessions_by_number_and_phase_changes_in_time_order() -> None:
    episode = AnalyticsEpisode(
        episode_id="ep-1", site_id="s", therapist_id="t", updated_at=MONDAY, phase="active"
    )
    rows = [
        AnalyticsEpisodeSession(
            episode_id="ep-1", session_number=n, site_id="s", status=status, at=week(n)
        )
        for n, status in ((2, "missed"), (1, "attended"), (3, "cancelled_by_clinic"))
    ]
    changes = [
        AnalyticsPhaseChange(
            episode_id="ep-1",
            site_id="s",
            from_phase=start,
            to_phase=to,
            reason=why,
            at=at,
            gap_days=gap,
        )
        for start, to, why, at, gap in (
            ("dropped_out", "active", "returned", week(9), 35),
            ("matched", "active", "first_attended_session", week(1), None),
            ("active", "dropped_out", "no_contact", week(7), None),
        )
    ]

    out = timeline_out(episode, [], [], sessions=rows, phases=changes)

    assert [(s.session_number, s.status) for s in out.sessions] == [
        (1, "attended"),
        (2, "missed"),
        (3, "cancelled_by_clinic"),
    ]
    assert [(p.from_phase, p.to_phase, p.reason, p.gap_days) for p in out.phases] == [
        ("matched", "active", "first_attended_session", None),
        ("active", "dropped_out", "no_contact", None),
        ("dropped_out", "active", "returned", 35),
    ]
    body = out.model_dump(mode="json")
    assert body["sessions"][1] == {
        "session_number": 2,
        "status": "missed",
        "at": "2026-11-09T10:00:00Z",
        "implied_by_feedback": False,
    }
    assert body["phases"][2]["at"] == "2026-12-28T10:00:00Z"
