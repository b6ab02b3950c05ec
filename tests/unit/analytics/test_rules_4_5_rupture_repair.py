"""Rule 4 — rupture: with an earlier score and no open rupture, a drop of at least RC below the
previous score or below the baseline (the larger drop counts). Rule 5 — repair within RC of the
pre-rupture baseline and not in concern; unresolved_rupture at r + 3, once."""

from __future__ import annotations

from decimal import Decimal

from services.analytics.domain import RuleConfig
from tests.unit.analytics.builders import Episode, kinds, opened

# A site whose SRS concern line is low enough to test the repair threshold on its own.
LOW_CONCERN = RuleConfig.for_site(
    {"instruments": {"srs": {"concern_total_below": 30, "concern_any_item_below": 7}}}
)


def _ruptures(episode: Episode) -> list[int]:
    return [c.session for c in episode.opened("rupture")]


def test_rupture_opens_when_score_drops_by_exactly_reliable_change_from_previous() -> None:
    episode = Episode()
    episode.add(1, "srs", "40.0")

    (rupture,) = opened(episode.add(2, "srs", "35.0"), "rupture")

    assert rupture.severity == "high"
    assert rupture.rule == "rule-4-rupture"
    assert rupture.respondent_id == "ep-1-c"
    assert rupture.inputs["previous"] == 40.0
    assert rupture.inputs["drop_previous"] == 5.0
    assert rupture.inputs["threshold"] == 5.0


def test_no_rupture_when_score_drops_from_previous_by_a_tenth_less_than_reliable_change() -> None:
    episode = Episode()
    episode.series("srs", "40.0", "35.1")

    assert _ruptures(episode) == []


def test_rupture_opens_when_score_is_exactly_reliable_change_below_baseline() -> None:
    """40.0 then 37.0: baseline 38.5; 33.5 is only 3.5 below the previous score but 5.0 below
    the baseline — the larger drop counts."""
    episode = Episode()
    episode.series("srs", "40.0", "37.0", "33.5")

    (rupture,) = episode.opened("rupture")
    assert rupture.session == 3
    assert rupture.inputs["baseline"] == 38.5
    assert rupture.inputs["drop_previous"] == 3.5
    assert rupture.inputs["drop_baseline"] == 5.0
    assert rupture.inputs["counted"] == "baseline"
    assert rupture.inputs["drop"] == 5.0


def test_no_rupture_when_score_is_a_tenth_less_than_reliable_change_below_baseline() -> None:
    episode = Episode()
    episode.series("srs", "40.0", "37.0", "33.6")

    assert _ruptures(episode) == []


def test_rupture_reports_the_previous_score_drop_when_it_is_the_larger() -> None:
    episode = Episode()
    episode.series("srs", "30.0", "40.0", "34.0")  # previous drop 6.0, baseline drop 1.0

    (rupture,) = episode.opened("rupture")
    assert rupture.inputs["counted"] == "previous"
    assert rupture.inputs["drop"] == 6.0


def test_baseline_drop_of_exactly_reliable_change_counts_where_floats_would_fall_short() -> None:
    """(36.6 + 36.0) / 2 − 31.3 is 5.0 exactly; in binary floating point it is 4.9999…"""
    assert (36.6 + 36.0) / 2 - 31.3 < 5  # the slop the rule must not have
    episode = Episode()
    episode.series("srs", "36.6", "36.0", "31.3")

    assert _ruptures(episode) == [3]


def test_baseline_with_a_repeating_mean_is_compared_exactly() -> None:
    """40.0, 36.5, 38.0: baseline 38.1666…; 33.1 is 5.0666… below it, 33.2 only 4.9666…"""
    fired = Episode()
    fired.series("srs", "40.0", "36.5", "38.0", "33.1")
    not_fired = Episode()
    not_fired.series("srs", "40.0", "36.5", "38.0", "33.2")

    assert _ruptures(fired) == [4]
    assert _ruptures(not_fired) == []


def test_wai_sr_rupture_at_a_drop_of_exactly_7_and_not_at_6() -> None:
    fired = Episode()
    fired.series("wai-sr", 60, 53)
    not_fired = Episode()
    not_fired.series("wai-sr", 60, 54)

    assert _ruptures(fired) == [2]
    assert _ruptures(not_fired) == []


def test_no_rupture_without_an_earlier_score() -> None:
    assert opened(Episode().add(1, "srs", "10.0"), "rupture") == []


def test_an_earlier_score_in_the_same_session_is_not_an_earlier_score() -> None:
    episode = Episode()
    episode.add(1, "srs", "40.0")
    episode.add(1, "srs", "30.0")  # a second response in session 1

    assert _ruptures(episode) == []


def test_no_second_rupture_opens_while_one_is_open() -> None:
    episode = Episode()
    episode.series("srs", "40.0", "34.0", "28.0", "20.0")

    assert _ruptures(episode) == [2]


def test_only_client_side_respondents_have_ruptures() -> None:
    episode = Episode()
    episode.series("wai-sr-t", 60, 40, role="therapist")

    assert _ruptures(episode) == []


def test_partner_and_client_ruptures_are_separate() -> None:
    episode = Episode()
    for role in ("client", "partner"):
        episode.series("wai-sr", 60, 50, role=role)

    assert [c.respondent_id for c in episode.opened("rupture")] == ["ep-1-c", "ep-1-p"]


def test_repair_needs_the_score_strictly_within_reliable_change_of_the_pre_rupture_baseline() -> (
    None
):
    """WAI-SR (RC 7): pre-rupture baseline 60; 53 is exactly 7 below (not repaired), 54 is 6."""
    episode = Episode()
    episode.series("wai-sr", 60, 50, 53)
    assert episode.opened("repair") == []

    changes = episode.add(4, "wai-sr", 54)

    assert kinds(changes) == [("resolve", "rupture"), ("open", "repair")]
    repair = changes[1]
    assert repair.severity == "routine"
    assert repair.rule == "rule-5-repair"
    assert repair.inputs["pre_rupture_baseline"] == 60
    assert repair.inputs["gap"] == 6
    assert repair.inputs["rupture_session"] == 2
    assert repair.lasting is False
    assert changes[0].opened_session == 2
    assert episode.open_now("rupture") == []


def test_srs_repair_at_reliable_change_minus_a_tenth_and_not_at_reliable_change() -> None:
    episode = Episode(LOW_CONCERN)
    episode.series("srs", "40.0", "34.0", "35.0")
    assert episode.opened("repair") == []  # 40.0 − 35.0 = 5.0 = RC

    assert kinds(episode.add(4, "srs", "35.1")) == [("resolve", "rupture"), ("open", "repair")]


def test_a_score_in_concern_does_not_repair_even_within_reliable_change() -> None:
    """WAI-SR: pre-rupture baseline 40; 35 is within 7 but in concern (< 36); 36 repairs."""
    episode = Episode()
    episode.series("wai-sr", 40, 30, 35)
    assert episode.opened("repair") == []

    assert ("open", "repair") in kinds(episode.add(4, "wai-sr", 36))


def test_repair_compares_with_the_pre_rupture_baseline_not_the_current_one() -> None:
    """Baseline 60 at the rupture; by session 5 the running baseline is 55, and 53 is within 7
    of that — but 7 below the pre-rupture baseline, so not repaired."""
    episode = Episode()
    episode.series("wai-sr", 60, 60, 50, 50, 53)

    assert episode.opened("repair") == []
    assert len(episode.open_now("rupture")) == 1


def test_repair_is_not_at_the_rupture_session_itself() -> None:
    episode = Episode(LOW_CONCERN)
    episode.series("srs", "40.0", "34.0")

    episode.add(2, "srs", "40.0")  # a second response in the rupture's session

    assert episode.opened("repair") == []


def test_unresolved_rupture_does_not_fire_at_r_plus_2() -> None:
    episode = Episode()
    episode.series("wai-sr", 60, 50, 50, 50)  # rupture at 2; sessions 3 and 4

    assert episode.opened("unresolved_rupture") == []


def test_unresolved_rupture_fires_once_at_r_plus_3_and_stays_open_until_repair() -> None:
    episode = Episode()
    episode.series("wai-sr", 60, 50, 50, 50, 50, 50)

    (unresolved,) = episode.opened("unresolved_rupture")
    assert unresolved.session == 5
    assert unresolved.severity == "high"
    assert unresolved.rule == "rule-5-unresolved-rupture"
    assert unresolved.inputs["rupture_session"] == 2
    assert unresolved.inputs["sessions_allowed"] == 3
    assert unresolved.suggestion_code == "review_rupture_with_supervisor"

    changes = episode.add(7, "wai-sr", 60)

    assert kinds(changes) == [
        ("resolve", "rupture"),
        ("resolve", "unresolved_rupture"),
        ("open", "repair"),
    ]


def test_unresolved_rupture_fires_at_the_first_record_at_or_after_r_plus_3() -> None:
    episode = Episode()
    episode.series("wai-sr", 60, 50)

    assert [c.session for c in opened(episode.add(7, "wai-sr", 50), "unresolved_rupture")] == [7]


def test_no_unresolved_rupture_when_the_record_at_r_plus_3_repairs() -> None:
    episode = Episode()
    episode.series("wai-sr", 60, 50, 50, 50, 60)

    assert episode.opened("unresolved_rupture") == []
    assert [c.session for c in episode.opened("repair")] == [5]


def test_a_new_rupture_can_open_after_a_repair() -> None:
    episode = Episode()
    episode.series("wai-sr", 60, 50, 60, 50)

    assert _ruptures(episode) == [2, 4]


def test_a_site_can_change_the_rupture_threshold() -> None:
    episode = Episode(RuleConfig.for_site({"instruments": {"srs": {"reliable_change": "4"}}}))
    episode.series("srs", "40.0", "36.0")

    (rupture,) = episode.opened("rupture")
    assert rupture.inputs["threshold"] == 4.0


def test_a_site_can_change_the_unresolved_window() -> None:
    episode = Episode(RuleConfig.for_site({"unresolved_rupture_sessions": 2}))
    episode.series("wai-sr", 60, 50, 50, 50)

    assert [c.session for c in episode.opened("unresolved_rupture")] == [4]


def test_rupture_state_keeps_the_pre_rupture_baseline_exactly() -> None:
    episode = Episode()
    episode.series("srs", "40.0", "36.5", "38.0", "33.1")

    assert episode.state is not None
    series = episode.state.series[("ep-1-c", "srs")]
    assert (series.rupture_sum, series.rupture_n) == (Decimal("114.5"), 3)
