"""Late records: "Records are applied in session order per episode; a late record re-evaluates
what it affects." A record earlier than the episode's latest session rebuilds the episode in
session order and reports the difference with what was already reported."""

from __future__ import annotations

from services.analytics.domain import AlertChange
from tests.unit.analytics.builders import Episode


def _changes(changes: list[AlertChange]) -> list[tuple[str, str, int, int]]:
    return [
        (c.action, c.kind, c.session, c.opened_session)
        for c in changes
        if c.kind not in ("dropout_risk", "rematch_suggested")
    ]


def test_a_late_low_score_opens_what_it_would_have_opened_and_closes_what_later_scores_close() -> (
    None
):
    episode = Episode()
    episode.add(1, "srs", "40.0")
    episode.add(3, "srs", "40.0")

    changes = episode.apply(episode.record(2, "srs", "30.0"))

    assert _changes(changes) == [
        ("open", "low_alliance", 2, 2),
        ("open", "early_alliance_risk", 2, 2),
        ("open", "rupture", 2, 2),
        ("resolve", "low_alliance", 3, 2),
        ("resolve", "early_alliance_risk", 3, 2),
        ("resolve", "rupture", 3, 2),
        ("open", "repair", 3, 3),
    ]
    assert episode.state is not None and episode.state.rebuilds == 1
    assert [r.session for r in episode.state.records] == [1, 3, 2]  # arrival order kept


def test_a_late_record_withdraws_an_alert_the_reordered_history_no_longer_has() -> None:
    """40.0 then 35.0 looked like a rupture; the late session-2 score of 36.0 puts 35.0 within
    RC of both the previous score and the baseline, so the rupture is resolved."""
    episode = Episode()
    episode.add(1, "srs", "40.0")
    episode.add(3, "srs", "35.0")
    assert [c.session for c in episode.opened("rupture")] == [3]

    changes = episode.apply(episode.record(2, "srs", "36.0"))

    (withdrawn,) = [c for c in changes if c.kind == "rupture"]
    assert (withdrawn.action, withdrawn.opened_session, withdrawn.session) == ("resolve", 3, 3)
    assert withdrawn.inputs == {"reason": "late-record", "late_session": 2}
    assert episode.open_now("rupture") == []
    assert [c.session for c in episode.open_now("low_alliance")] == [3]  # still open


def test_a_late_record_reports_its_own_risk_once_and_no_earlier_alert_again() -> None:
    episode = Episode()
    episode.add(1, "phq-9", 12, item_9=2)
    episode.add(3, "phq-9", 12)

    changes = episode.apply(episode.record(2, "phq-9", 12, item_9=1))

    assert [(c.kind, c.session) for c in changes if c.action == "open"] == [("risk", 2)]


def test_a_late_partner_score_re_evaluates_the_split_of_its_session() -> None:
    episode = Episode()
    episode.add(1, "srs", "38.0", role="client")
    episode.add(2, "srs", "38.0", role="client")

    changes = episode.apply(episode.record(1, "srs", "30.0", role="partner"))

    assert ("open", "split_alliance", 1, 1) in _changes(changes)


def test_records_in_the_same_session_in_any_order_are_not_late() -> None:
    episode = Episode()
    episode.add(2, "srs", "38.0", role="partner")
    episode.add(2, "srs", "30.0", role="client")

    assert episode.state is not None and episode.state.rebuilds == 0


def test_a_rebuilt_episode_has_the_same_open_alerts_as_one_applied_in_order() -> None:
    scores = [(1, "40.0"), (2, "34.0"), (3, "33.0"), (4, "34.0"), (5, "33.0"), (6, "38.0")]
    in_order = Episode()
    for session, total in scores:
        in_order.add(session, "srs", total)
        in_order.add(session, "ors", "20.0")
    shuffled = Episode()
    for session, total in [scores[i] for i in (0, 3, 1, 5, 2, 4)]:
        shuffled.add(session, "srs", total)
        shuffled.add(session, "ors", "20.0")

    assert in_order.state is not None and shuffled.state is not None
    assert shuffled.state.rebuilds > 0
    assert {a.identity for a in shuffled.state.open_alerts.values()} == {
        a.identity for a in in_order.state.open_alerts.values()
    }
    reported_open = {c.identity for c in shuffled.opened() if c.lasting}
    for c in shuffled.resolved():
        reported_open.discard(c.identity)
    assert reported_open == {a.identity for a in in_order.state.open_alerts.values()}
