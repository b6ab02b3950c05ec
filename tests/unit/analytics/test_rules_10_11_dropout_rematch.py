"""Rule 10 — dropout_risk: a transparent points score (low early alliance, open and unresolved
ruptures, sessions without client-side alliance feedback, missed sessions) that alerts above a
configurable threshold. Rule 11 — rematch_suggested: at session ≥ 6, low alliance in at least 2
sessions or an unresolved rupture, and no reliable improvement in outcome."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.analytics.domain import RuleConfig
from tests.unit.analytics.builders import START, Episode


def _dropout(episode: Episode) -> list[tuple[str, int]]:
    return [(c.action, c.session) for c in episode.changes if c.kind == "dropout_risk"]


def _rematch(episode: Episode) -> list[tuple[str, int]]:
    return [(c.action, c.session) for c in episode.changes if c.kind == "rematch_suggested"]


def test_default_dropout_weights_and_threshold() -> None:
    config = RuleConfig()
    weights = config.dropout_weights

    assert (weights.early_low_alliance, weights.open_rupture, weights.unresolved_rupture) == (
        Decimal(2),
        Decimal(2),
        Decimal(2),
    )
    assert (weights.missed_feedback, weights.missed_session) == (Decimal(1), Decimal(1))
    assert config.dropout_threshold == 3


def test_early_low_alliance_alone_scores_2_and_does_not_alert() -> None:
    episode = Episode()
    episode.series("srs", "35.0", "35.0", "35.0")

    assert _dropout(episode) == []


def test_early_low_alliance_with_an_open_rupture_scores_4_and_alerts() -> None:
    episode = Episode()
    episode.series("srs", "40.0", "34.0")

    assert _dropout(episode) == [("open", 2)]
    (alert,) = episode.opened("dropout_risk")
    assert alert.severity == "routine"
    assert alert.rule == "rule-10-dropout-risk"
    assert alert.respondent_id is None
    assert alert.inputs == {
        "score": 4.0,
        "threshold": 3.0,
        "early_low_alliance": 1,
        "open_ruptures": 1,
        "unresolved_ruptures": 0,
        "missed_feedback_sessions": 0,
        "missed_sessions": 0,
        "intervals_without_contact": 0,
        "weight_early_low_alliance": 2.0,
        "weight_open_rupture": 2.0,
        "weight_unresolved_rupture": 2.0,
        "weight_missed_feedback": 1.0,
        "weight_missed_session": 1.0,
        "weight_interval_without_contact": 1.0,
    }


def test_a_score_equal_to_the_threshold_does_not_alert_and_one_point_more_does() -> None:
    """Early low alliance (2) + one session without alliance feedback (1) = 3: not above 3;
    a second such session makes 4."""
    episode = Episode()
    episode.add(1, "srs", "35.0")
    episode.add(2, "ors", "20.0")  # no alliance rating in session 2
    episode.add(3, "ors", "20.0")  # session 2 counted: 3 points
    assert _dropout(episode) == []

    episode.add(4, "ors", "20.0")  # session 3 counted: 4 points

    assert _dropout(episode) == [("open", 4)]
    assert episode.opened("dropout_risk")[0].inputs["missed_feedback_sessions"] == 2


def test_missed_sessions_are_counted_from_the_gap_between_session_dates() -> None:
    """Weekly sessions: a gap of 35 days is 4 missed sessions (4 points); 27 days is 2."""
    alerted = Episode()
    alerted.add(1, "srs", "40.0", at=START)
    alerted.add(2, "srs", "40.0", at=START + timedelta(days=35))
    quiet = Episode()
    quiet.add(1, "srs", "40.0", at=START)
    quiet.add(2, "srs", "40.0", at=START + timedelta(days=27))

    assert _dropout(alerted) == [("open", 2)]
    assert alerted.opened("dropout_risk")[0].inputs["missed_sessions"] == 4
    assert _dropout(quiet) == []
    assert quiet.state is not None and quiet.state.missed_sessions == 2


def test_dropout_risk_resolves_at_a_later_session_when_the_score_falls_back() -> None:
    episode = Episode()
    episode.series("srs", "40.0", "34.0", "40.0")  # rupture at 2, repaired at 3

    assert _dropout(episode) == [("open", 2), ("resolve", 3)]


def test_a_site_can_lower_the_dropout_threshold() -> None:
    episode = Episode(RuleConfig.for_site({"dropout_threshold": 1}))

    episode.add(1, "srs", "35.0")

    assert _dropout(episode) == [("open", 1)]


def test_a_site_can_reweight_the_factors() -> None:
    config = RuleConfig.for_site({"dropout_weights": {"open_rupture": 0}})
    episode = Episode(config)
    episode.series("srs", "40.0", "34.0")

    assert _dropout(episode) == []
    assert config.dropout_weights.early_low_alliance == 2  # the rest keep their defaults


def _rematch_episode(alliance: list[str], outcome: list[str]) -> Episode:
    episode = Episode()
    for session, (srs, ors) in enumerate(zip(alliance, outcome, strict=True), start=1):
        episode.add(session, "srs", srs)
        episode.add(session, "ors", ors)
    return episode


def test_rematch_is_suggested_at_session_6_after_low_alliance_in_2_sessions_without_gains() -> None:
    episode = _rematch_episode(["35.0", "35.0", "38.0", "38.0", "38.0", "38.0"], ["20.0"] * 6)

    assert _rematch(episode) == [("open", 6)]
    (alert,) = episode.opened("rematch_suggested")
    assert alert.severity == "high"
    assert alert.rule == "rule-11-rematch-suggested"
    assert alert.respondent_id is None
    assert alert.inputs["low_alliance_sessions"] == 2
    assert alert.inputs["reliably_improved_outcomes"] == 0
    assert alert.suggestion_code == "offer_different_therapist"


def test_no_rematch_before_session_6() -> None:
    episode = _rematch_episode(["35.0", "35.0", "38.0", "38.0", "38.0"], ["20.0"] * 5)

    assert _rematch(episode) == []


def test_no_rematch_with_low_alliance_in_only_1_session() -> None:
    episode = _rematch_episode(["35.0", "38.0", "38.0", "38.0", "38.0", "38.0"], ["20.0"] * 6)

    assert _rematch(episode) == []


def test_no_rematch_when_the_outcome_has_reliably_improved() -> None:
    episode = _rematch_episode(
        ["35.0", "35.0", "38.0", "38.0", "38.0", "38.0"],
        ["20.0", "20.0", "20.0", "20.0", "25.0", "25.0"],
    )

    assert _rematch(episode) == []


def test_an_unresolved_rupture_is_enough_for_a_rematch() -> None:
    episode = Episode()
    episode.series("wai-sr", 60, 50, 50, 50, 50, 50)  # never in concern; unresolved at 5

    assert _rematch(episode) == [("open", 6)]
    assert episode.opened("rematch_suggested")[0].inputs["unresolved_ruptures"] == 1


def test_rematch_resolves_at_a_later_session_when_the_outcome_improves() -> None:
    episode = _rematch_episode(
        ["35.0", "35.0", "38.0", "38.0", "38.0", "38.0", "38.0"],
        ["20.0", "20.0", "20.0", "20.0", "20.0", "20.0", "25.0"],
    )

    assert _rematch(episode) == [("open", 6), ("resolve", 7)]


def test_a_site_can_consider_rematch_later() -> None:
    episode = Episode(RuleConfig.for_site({"rematch_session": 8}))
    for session, srs in enumerate(["35.0", "35.0"] + ["38.0"] * 6, start=1):
        episode.add(session, "srs", srs)

    assert _rematch(episode) == [("open", 8)]
