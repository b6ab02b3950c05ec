"""Rule 8 — deterioration: an outcome score worse than the respondent's first on that instrument
by at least RC (ORS lower is worse; PHQ-9, GAD-7 higher is worse). Rule 9 — not_on_track:
evaluated once, at the first record with session ≥ 4 that is not the respondent's first on the
instrument: first score in the clinical range and no score so far improved on it by RC."""

from __future__ import annotations

import pytest

from services.analytics.domain import RuleConfig
from tests.unit.analytics.builders import Episode, opened


def _deteriorations(episode: Episode) -> list[tuple[str, int]]:
    return [(c.action, c.session) for c in episode.changes if c.kind == "deterioration"]


def _not_on_track(episode: Episode) -> list[tuple[str, int]]:
    return [(c.action, c.session) for c in episode.changes if c.kind == "not_on_track"]


@pytest.mark.parametrize(
    ("instrument", "first", "worse_by_rc", "one_step_short"),
    [
        ("ors", "30.0", "25.0", "25.1"),  # lower is worse, RC 5
        ("phq-9", 10, 16, 15),  # higher is worse, RC 6
        ("gad-7", 8, 12, 11),  # higher is worse, RC 4
    ],
)
def test_deterioration_at_exactly_reliable_change_worse_than_the_first_score_and_not_a_step_less(
    instrument: str, first: object, worse_by_rc: object, one_step_short: object
) -> None:
    fired = Episode()
    fired.series(instrument, first, worse_by_rc)
    not_fired = Episode()
    not_fired.series(instrument, first, one_step_short)

    assert _deteriorations(fired) == [("open", 2)]
    assert _deteriorations(not_fired) == []
    alert = fired.opened("deterioration")[0]
    assert alert.severity == "high"
    assert alert.rule == "rule-8-deterioration"
    assert alert.instrument == instrument
    assert alert.respondent_id == "ep-1-c"


@pytest.mark.parametrize(
    ("instrument", "first", "better"), [("ors", "20.0", "35.0"), ("phq-9", 20, 2)]
)
def test_a_large_change_in_the_better_direction_is_not_deterioration(
    instrument: str, first: object, better: object
) -> None:
    episode = Episode()
    episode.series(instrument, first, better)

    assert _deteriorations(episode) == []


def test_deterioration_inputs_name_the_first_score_change_and_direction() -> None:
    episode = Episode()
    episode.series("ors", "30.0", "25.0")

    inputs = episode.opened("deterioration")[0].inputs
    assert inputs["first"] == 30.0
    assert inputs["first_session"] == 1
    assert inputs["score"] == 25.0
    assert inputs["change"] == -5.0
    assert inputs["threshold"] == 5.0
    assert inputs["direction"] == "lower_is_worse"


def test_deterioration_is_against_the_first_score_not_the_previous_one() -> None:
    episode = Episode()
    episode.series("phq-9", 10, 13, 16)  # never 6 above the previous; 6 above the first

    assert _deteriorations(episode) == [("open", 3)]


def test_deterioration_stays_one_alert_resolves_when_it_clears_and_recurs_as_a_new_one() -> None:
    episode = Episode()
    episode.series("phq-9", 10, 16, 18, 15, 17)

    assert _deteriorations(episode) == [("open", 2), ("resolve", 4), ("open", 5)]


def test_each_outcome_instrument_has_its_own_deterioration() -> None:
    episode = Episode()
    episode.add(1, "ors", "30.0")
    episode.add(1, "phq-9", 10)
    episode.add(2, "ors", "20.0")
    episode.add(2, "phq-9", 20)

    assert [c.instrument for c in episode.opened("deterioration")] == ["ors", "phq-9"]


def test_a_partners_outcome_is_their_own_series() -> None:
    episode = Episode()
    episode.add(1, "ors", "30.0", role="client")
    episode.add(2, "ors", "24.0", role="partner")  # the partner's first

    assert _deteriorations(episode) == []


@pytest.mark.parametrize(
    ("instrument", "in_range", "out_of_range"),
    [("ors", "24.9", "25.0"), ("phq-9", 10, 9), ("gad-7", 8, 7)],
)
def test_not_on_track_fires_at_session_4_only_when_the_first_score_was_in_the_clinical_range(
    instrument: str, in_range: object, out_of_range: object
) -> None:
    fired = Episode()
    fired.series(instrument, in_range, in_range, in_range, in_range)
    not_fired = Episode()
    not_fired.series(instrument, out_of_range, out_of_range, out_of_range, out_of_range)

    assert _not_on_track(fired) == [("open", 4)]
    assert _not_on_track(not_fired) == []
    alert = fired.opened("not_on_track")[0]
    assert alert.severity == "routine"
    assert alert.rule == "rule-9-not-on-track"
    assert alert.inputs["evaluated_at_session"] == 4


def test_an_improvement_of_exactly_reliable_change_at_any_point_means_on_track() -> None:
    """ORS first 24.9 (clinical); 29.9 at session 2 improved by exactly 5 — even though
    session 4 is back at 24.9, some score so far improved by RC."""
    episode = Episode()
    episode.series("ors", "24.9", "29.9", "24.9", "24.9")

    assert _not_on_track(episode) == []


def test_an_improvement_a_tenth_short_of_reliable_change_is_not_on_track() -> None:
    episode = Episode()
    episode.series("ors", "24.9", "29.8", "24.9", "24.9")

    assert _not_on_track(episode) == [("open", 4)]


@pytest.mark.parametrize(("at_session_4", "expected"), [(6, []), (7, [("open", 4)])])
def test_phq9_improvement_counts_the_record_being_evaluated(
    at_session_4: int, expected: list[tuple[str, int]]
) -> None:
    episode = Episode()
    episode.add(1, "phq-9", 12)
    episode.add(4, "phq-9", at_session_4)

    assert _not_on_track(episode) == expected


def test_not_on_track_is_not_evaluated_before_session_4() -> None:
    episode = Episode()
    episode.series("ors", "20.0", "20.0", "20.0")

    assert _not_on_track(episode) == []


def test_not_on_track_waits_for_a_record_that_is_not_the_respondents_first() -> None:
    episode = Episode()
    episode.add(4, "ors", "20.0")  # first ORS at session 4: nothing to compare with

    assert _not_on_track(episode) == []
    episode.add(5, "ors", "20.0")
    assert _not_on_track(episode) == [("open", 5)]


def test_not_on_track_is_evaluated_at_the_first_record_at_or_after_session_4() -> None:
    episode = Episode()
    episode.add(1, "phq-9", 15)
    episode.add(7, "phq-9", 15)

    assert _not_on_track(episode) == [("open", 7)]


def test_not_on_track_is_evaluated_once() -> None:
    episode = Episode()
    episode.series("ors", "20.0", "25.0", "20.0", "20.0")  # on track when evaluated at 4
    episode.series("ors", "20.0", "18.0", first_session=5)

    assert _not_on_track(episode) == []


def test_not_on_track_resolves_when_a_later_score_improves_by_reliable_change() -> None:
    episode = Episode()
    episode.series("ors", "20.0", "20.0", "20.0", "20.0", "24.9", "25.0")

    assert _not_on_track(episode) == [("open", 4), ("resolve", 6)]


def test_not_on_track_and_deterioration_fire_together() -> None:
    episode = Episode()
    episode.add(1, "phq-9", 13)

    changes = episode.add(4, "phq-9", 19)

    assert [c.kind for c in opened(changes)] == ["deterioration", "not_on_track"]


def test_a_site_can_evaluate_not_on_track_at_session_3() -> None:
    episode = Episode(RuleConfig.for_site({"not_on_track_session": 3}))
    episode.series("gad-7", 10, 10, 10)

    assert _not_on_track(episode) == [("open", 3)]


def test_a_site_can_move_the_clinical_cutoff() -> None:
    episode = Episode(RuleConfig.for_site({"instruments": {"ors": {"clinical_cutoff": 28}}}))
    episode.series("ors", "27.0", "27.0", "27.0", "27.0")  # adolescent cutoff 28

    assert _not_on_track(episode) == [("open", 4)]
