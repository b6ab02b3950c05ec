"""Rule 9 with an expected-trajectories model: where the model has the client's starting band
and the session, a score worse than the model's 25th percentile (ORS: below p25; PHQ-9, GAD-7,
CORE-10: above p75) at two consecutive records from session 3 opens not_on_track, once while
open; a record back on the good side of the line resolves it. Elsewhere, the fallback rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rapport.trajectories.model import TrajectoryModel, load_model
from services.analytics.domain import RuleConfig
from tests.unit.analytics.builders import INSTRUMENTS, Episode

ORS_P25 = "20.0"  # the model's 25th percentile for ORS band 3 (first score 15.0–19.9)
PHQ_P75 = 12  # the model's 75th percentile for PHQ-9 band 3 (first score 15–19)


def _sessions(p10: float, p25: float, p50: float, p75: float, p90: float) -> dict[str, Any]:
    point = {"n": 40, "p10": p10, "p25": p25, "p50": p50, "p75": p75, "p90": p90}
    return {"sessions": {str(s): point for s in range(1, 9)}}


def model() -> TrajectoryModel:
    text = json.dumps(
        {
            "version": 1,
            "fitted_at": "2026-12-01T00:00:00Z",
            "min_episodes": 30,
            "percentile_method": "linear",
            "smoothing": "none",
            "data": {
                "lines": 1,
                "records": 1,
                "bad_lines": 0,
                "records_fitted": 1,
                "episodes": 1,
                "instruments": {},
            },
            "instruments": {
                "ors": {"band_width": 5, "bands": {"3": _sessions(17.0, 20.0, 24.0, 28.0, 31.0)}},
                "phq-9": {"band_width": 5, "bands": {"3": _sessions(4, 6, 9, 12, 15)}},
            },
        }
    )
    return load_model(text, INSTRUMENTS)


def _episode(config: RuleConfig | None = None) -> Episode:
    return Episode(config, trajectories=model().instruments)


def _not_on_track(episode: Episode) -> list[tuple[str, int]]:
    return [(c.action, c.session) for c in episode.changes if c.kind == "not_on_track"]


def test_ors_exactly_at_the_25th_percentile_is_on_track_and_just_below_it_is_not() -> None:
    at_line = _episode()
    at_line.series("ors", "15.0", "16.0", ORS_P25, ORS_P25, ORS_P25)
    just_below = _episode()
    just_below.series("ors", "15.0", "16.0", "19.9", "19.9")

    assert _not_on_track(at_line) == []
    assert _not_on_track(just_below) == [("open", 4)]
    alert = just_below.opened("not_on_track")[0]
    assert alert.inputs["basis"] == "trajectory"
    assert alert.inputs["expected_line"] == 20.0
    assert alert.inputs["percentile"] == 25
    assert alert.inputs["consecutive_records"] == 2


def test_one_record_below_the_line_is_not_enough_two_consecutive_are() -> None:
    one = _episode()
    one.series("ors", "15.0", "16.0", "19.9", "20.0", "19.9", "20.5")
    two = _episode()
    two.series("ors", "15.0", "16.0", "19.9", "20.0", "19.9", "19.9")

    assert _not_on_track(one) == []
    assert _not_on_track(two) == [("open", 6)]


def test_records_before_session_3_do_not_count() -> None:
    from_session_2 = _episode()
    from_session_2.series("ors", "15.0", "16.0", "19.9", ORS_P25, first_session=1)
    early = _episode()
    early.add(1, "ors", "15.0")
    early.add(2, "ors", "19.9")
    early.add(3, "ors", "19.9")
    from_session_3 = _episode()
    from_session_3.add(1, "ors", "15.0")
    from_session_3.add(3, "ors", "19.9")
    from_session_3.add(4, "ors", "19.9")

    assert _not_on_track(from_session_2) == []
    assert _not_on_track(early) == []  # sessions 2 and 3: only one counts
    assert _not_on_track(from_session_3) == [("open", 4)]


def test_opens_once_while_open_and_a_record_back_on_track_resolves_it() -> None:
    episode = _episode()
    episode.series("ors", "15.0", "16.0", "19.0", "19.0", "18.0", "17.0", ORS_P25, "19.0")

    assert _not_on_track(episode) == [("open", 4), ("resolve", 7)]
    assert episode.open_now("not_on_track") == []  # back below at 8: one record is not enough


def test_a_recurrence_after_resolving_opens_a_new_alert() -> None:
    episode = _episode()
    episode.series("ors", "15.0", "16.0", "19.0", "19.0", "22.0", "19.0", "19.0", "19.0")

    assert _not_on_track(episode) == [("open", 4), ("resolve", 5), ("open", 7)]


def test_phq9_is_off_track_above_the_75th_percentile_not_at_it() -> None:
    at_line = _episode()
    at_line.series("phq-9", 15, 14, PHQ_P75, PHQ_P75, PHQ_P75)
    above = _episode()
    above.series("phq-9", 15, 14, PHQ_P75 + 1, PHQ_P75 + 1)

    assert _not_on_track(at_line) == []
    assert _not_on_track(above) == [("open", 4)]
    assert above.opened("not_on_track")[0].inputs["percentile"] == 75


def test_the_percentile_is_configurable_per_site() -> None:
    config = RuleConfig.for_site({"not_on_track_percentile": 10})
    below_p25 = _episode(config)
    below_p25.series("ors", "15.0", "16.0", "19.0", "19.0")  # below p25 20, above p10 17
    below_p10 = _episode(config)
    below_p10.series("ors", "15.0", "16.0", "16.9", "16.9")

    assert _not_on_track(below_p25) == []
    assert _not_on_track(below_p10) == [("open", 4)]
    assert below_p10.opened("not_on_track")[0].inputs["percentile"] == 10


@pytest.mark.parametrize("first", ["10.0", "24.9"])  # bands 2 and 4: not in the model
def test_without_model_data_for_the_band_the_fallback_rule_stays(first: str) -> None:
    with_model = _episode()
    with_model.series("ors", first, first, first, first)
    without = Episode()
    without.series("ors", first, first, first, first)

    assert _not_on_track(with_model) == _not_on_track(without) == [("open", 4)]
    assert "basis" not in with_model.opened("not_on_track")[0].inputs


def test_without_model_data_for_the_session_the_fallback_rule_stays() -> None:
    episode = _episode()
    # sessions 9–12 are not in the model: fallback rule evaluated at the first record ≥ 4
    episode.add(1, "ors", "15.0")
    for session in range(9, 13):
        episode.add(session, "ors", "15.0")

    assert _not_on_track(episode) == [("open", 9)]
    assert "basis" not in episode.opened("not_on_track")[0].inputs


def test_partners_are_not_compared_with_the_clients_model() -> None:
    episode = _episode()
    episode.series("ors", "15.0", "16.0", "19.9", "19.9", "19.9", role="partner")

    # the fallback rule applies to the partner (first 15.0 in the clinical range, no
    # improvement by RC): opened once at session 4, whatever the model says
    assert [c.inputs.get("basis") for c in episode.opened("not_on_track")] == [None]
