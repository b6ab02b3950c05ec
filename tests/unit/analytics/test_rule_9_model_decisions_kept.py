"""A new model never changes alerts already opened: a late record or an amendment rebuilds the
episode, and rule 9 keeps the basis (the model's percentiles, or the fallback) it decided on at
each session it judged: every session of the other series (their scores did not change), and
of the late record's own series the sessions before the late record's; only that series'
sessions from the late record's on are judged with the model in use now."""

from __future__ import annotations

import json

from rapport.trajectories.model import TrajectoryModel, load_model
from services.analytics.domain import EpisodeState, RuleConfig, apply
from services.analytics.domain.trajectories import Trajectories
from tests.unit.analytics.builders import INSTRUMENTS, Episode
from tests.unit.analytics.test_rule_9_trajectories import model


def lenient_model() -> TrajectoryModel:
    """The test model with ORS band 3's 25th percentile at 15.0 (19.9 is then on track)."""
    data = json.loads(model().model_dump_json())
    for point in data["instruments"]["ors"]["bands"]["3"]["sessions"].values():
        point.update(p10=12.0, p25=15.0)
    return load_model(json.dumps(data), INSTRUMENTS)


def off_track_at_4(trajectories: Trajectories) -> Episode:
    """ORS 15, 16, 19.9, 19.9 (below the test model's p25 of 20 at 3 and 4): opens at 4; a
    PHQ-9 beside it at sessions 1, 2 and 4 (session 3's comes late in the tests)."""
    episode = Episode(trajectories=trajectories)
    for session, ors in enumerate(("15.0", "16.0", "19.9", "19.9"), start=1):
        if session != 3:
            episode.apply(
                episode.record(session, "phq-9", 5)._replace(response_id=f"phq-{session}")
            )
        episode.add(session, "ors", ors)
    assert [(c.action, c.session) for c in episode.changes if c.kind == "not_on_track"] == [
        ("open", 4)
    ]
    return episode


def with_model(episode: Episode, trajectories: Trajectories) -> Episode:
    """The episode as the service would load it (state through JSON), with another model."""
    assert episode.state is not None
    episode.state = EpisodeState.from_json(json.loads(json.dumps(episode.state.to_json())))
    episode.trajectories = trajectories
    return episode


def test_a_late_record_of_another_instrument_keeps_the_alert_the_old_model_opened() -> None:
    episode = with_model(off_track_at_4(model().instruments), lenient_model().instruments)
    changes = episode.add(3, "phq-9", 5)  # late: session 3 after session 4
    assert [c for c in changes if c.kind == "not_on_track"] == []
    assert [a.opened_session for a in episode.open_now("not_on_track")] == [4]
    assert episode.state is not None and episode.state.rebuilds == 1


def test_a_late_record_of_another_respondent_keeps_the_alert() -> None:
    episode = with_model(off_track_at_4(model().instruments), lenient_model().instruments)
    changes = episode.add(2, "ors", "30.0", role="partner")
    assert [c for c in changes if c.kind == "not_on_track"] == []
    assert [a.opened_session for a in episode.open_now("not_on_track")] == [4]


def test_an_amendment_of_another_instrument_keeps_the_alert() -> None:
    episode = with_model(off_track_at_4(model().instruments), lenient_model().instruments)
    amended = episode.record(2, "phq-9", 6)._replace(response_id="phq-2-amended")
    assert episode.state is not None
    episode.state, changes = apply(
        episode.state,
        amended,
        INSTRUMENTS,
        RuleConfig(),
        replaces="phq-2",
        trajectories=episode.trajectories,
    )
    assert [c for c in changes if c.kind == "not_on_track"] == []
    assert [a.opened_session for a in episode.open_now("not_on_track")] == [4]
    assert episode.state.rebuilds == 1


def test_the_late_records_own_series_is_judged_with_the_model_in_use_now_from_its_session() -> None:
    # An amendment of the client's ORS at session 3 (same score) re-judges that series' sessions
    # 3 and 4 with the lenient model: on track, so the alert is withdrawn.
    episode = Episode(trajectories=model().instruments)
    for session, ors in enumerate(("15.0", "16.0", "19.9", "19.9"), start=1):
        episode.apply(episode.record(session, "ors", ors)._replace(response_id=f"ors-{session}"))
    episode = with_model(episode, lenient_model().instruments)
    assert episode.state is not None
    episode.state, changes = apply(
        episode.state,
        episode.record(3, "ors", "19.9")._replace(response_id="ors-3-amended"),
        INSTRUMENTS,
        RuleConfig(),
        replaces="ors-3",
        trajectories=episode.trajectories,
    )
    withdrawn = [c for c in changes if c.kind == "not_on_track"]
    assert [(c.action, c.opened_session, c.inputs["reason"]) for c in withdrawn] == [
        ("resolve", 4, "amended")
    ]


def test_a_late_record_of_the_same_series_after_the_opening_keeps_the_earlier_sessions() -> None:
    # Off track at 3 and 4 (opened at 4) and 5; the client's ORS of session 6 (14.0, off track
    # with either model) arrives after session 7's (14.0): sessions 3-5 keep the old model's
    # judgement, so the alert stays open (judged anew, they would be on track, the alert
    # withdrawn and another opened at 7).
    episode = Episode(trajectories=model().instruments)
    episode.series("ors", "15.0", "16.0", "19.9", "19.9", "19.9")
    episode.add(7, "ors", "14.0")
    episode = with_model(episode, lenient_model().instruments)
    changes = episode.add(6, "ors", "14.0")
    assert [c for c in changes if c.kind == "not_on_track"] == []
    assert [a.opened_session for a in episode.open_now("not_on_track")] == [4]


def test_a_session_decided_by_the_fallback_stays_with_the_fallback() -> None:
    # Without a model, ORS 15 ... 19.9 opens rule 9's fallback at session 4 (first in the
    # clinical range, no reliable improvement); a model loaded afterwards would not open it at
    # 4 (one record below p25 at 3 is not two), and would not withdraw it either.
    episode = Episode()
    episode.series("ors", "15.0", "16.0", "17.0", "17.0")
    assert [a.opened_session for a in episode.open_now("not_on_track")] == [4]
    episode = with_model(episode, lenient_model().instruments)
    episode.add(2, "phq-9", 5)
    assert [a.opened_session for a in episode.open_now("not_on_track")] == [4]
    assert episode.open_now("not_on_track")[0].inputs.get("basis") != "trajectory"
