"""Amendments: an amended answer takes the place of the answer it replaces ("a late record
re-evaluates what it affects"), so it never counts twice in the rules, and what the first
answer had opened and the amended history no longer holds is resolved (reason ``amended``)."""

from __future__ import annotations

from services.analytics.domain import AlertChange, EpisodeState, ScoredRecord, apply
from tests.unit.analytics.builders import Episode


def answer(episode: Episode, response_id: str, session: int, total: str, **kw: object) -> str:
    episode.apply(episode.record(session, "srs", total, **kw)._replace(response_id=response_id))
    return response_id


def amend(
    episode: Episode, replaces: str, session: int, instrument: str, total: object, **kw: object
) -> list[AlertChange]:
    record = episode.record(session, instrument, total, **kw)._replace(response_id="amended")
    episode.state, changes = apply(
        episode.state, record, episode.instruments, episode.config, replaces=replaces
    )
    return changes


def alerts(changes: list[AlertChange]) -> list[tuple[str, str, int, int]]:
    return [
        (c.action, c.kind, c.session, c.opened_session)
        for c in changes
        if c.kind not in ("dropout_risk", "rematch_suggested")
    ]


def test_an_amended_low_score_withdraws_what_the_first_answer_opened() -> None:
    episode = Episode()
    answer(episode, "r1", 1, "40.0")
    answer(episode, "r2", 2, "40.0")
    answer(episode, "r3", 3, "30.0")
    assert {c.kind for c in episode.opened()} >= {"rupture", "low_alliance"}

    changes = amend(episode, "r3", 3, "srs", "39.0")

    assert sorted(alerts(changes)) == [
        ("resolve", "low_alliance", 3, 3),
        ("resolve", "rupture", 3, 3),
    ]
    assert all(c.inputs == {"reason": "amended", "amended_session": 3} for c in changes)
    state = episode.state
    assert state is not None
    assert [(r.session, r.total, r.response_id) for r in state.records] == [
        (1, 40, "r1"),
        (2, 40, "r2"),
        (3, 39, "amended"),
    ]
    assert episode.open_now("rupture") == episode.open_now("low_alliance") == []


def test_an_amended_score_counts_once_in_the_series() -> None:
    """Session 3 holds one score (the amended 34.0, a rupture from 40), not 40 and 34."""
    episode = Episode()
    answer(episode, "r1", 1, "40.0")
    answer(episode, "r2", 2, "40.0")
    answer(episode, "r3", 3, "40.0")
    assert episode.opened("rupture") == []

    changes = amend(episode, "r3", 3, "srs", "34.0")

    assert ("open", "rupture", 3, 3) in alerts(changes)
    state = episode.state
    assert state is not None
    series = state.series[("ep-1-c", "srs")]
    assert (series.n, series.cur_n, series.cur_sum, series.before_n) == (3, 1, 34, 2)
    assert len(state.records) == 3


def test_amending_an_earlier_session_re_evaluates_the_later_ones() -> None:
    """40.0 then 35.0 looked like a rupture at session 3; session 2 amended from 40.0 to 36.0
    puts 35.0 within RC of the previous score and the baseline: the rupture is withdrawn."""
    episode = Episode()
    answer(episode, "r1", 1, "40.0")
    answer(episode, "r2", 2, "40.0")
    answer(episode, "r3", 3, "35.0")
    assert [c.session for c in episode.opened("rupture")] == [3]

    changes = amend(episode, "r2", 2, "srs", "36.0")

    (withdrawn,) = [c for c in changes if c.kind == "rupture"]
    assert (withdrawn.action, withdrawn.opened_session) == ("resolve", 3)
    assert withdrawn.inputs == {"reason": "amended", "amended_session": 2}
    state = episode.state
    assert state is not None and [r.session for r in state.records] == [1, 2, 3]


def test_an_amendment_neither_doubles_nor_withdraws_a_risk_already_reported() -> None:
    episode = Episode()
    record = episode.record(1, "phq-9", 12, item_9=2)._replace(response_id="r1")
    episode.apply(record)
    assert [c.kind for c in episode.opened()] == ["risk"]

    still_risky = amend(episode, "r1", 1, "phq-9", 14, item_9=3)
    episode.state, no_risk = apply(
        episode.state,
        episode.record(1, "phq-9", 12)._replace(response_id="again"),
        episode.instruments,
        episode.config,
        replaces="amended",
    )

    assert [c for c in still_risky if c.kind == "risk"] == []
    assert [c for c in no_risk if c.kind == "risk"] == []  # the clinician was told; it stands


def test_a_state_kept_before_records_had_ids_replaces_the_same_answer() -> None:
    episode = Episode()
    episode.add(1, "srs", "40.0")
    episode.add(2, "srs", "30.0")
    assert episode.state is not None
    old = EpisodeState.from_json(episode.state.to_json())
    assert all(r.response_id is None for r in old.records)

    episode.state = old
    changes = amend(episode, "unknown-id", 2, "srs", "39.0")

    assert ("resolve", "low_alliance", 2, 2) in alerts(changes)
    assert [(r.session, r.total) for r in episode.state.records] == [(1, 40), (2, 39)]


def test_records_keep_their_response_id_through_json() -> None:
    record = Episode().record(1, "srs", "38.0")._replace(response_id="r-9")
    assert ScoredRecord.from_json(record.to_json()) == record
    plain = Episode().record(1, "srs", "38.0")
    assert "response_id" not in plain.to_json()
