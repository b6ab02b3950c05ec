"""Rule 6 — split_alliance: in one session, two or more client-side respondents on the same
instrument differ by at least RC, or at least one is in concern and one is not. At most one
open per episode, resolved at the next session where it is checked and does not hold."""

from __future__ import annotations

from services.analytics.domain import AlertChange
from tests.unit.analytics.builders import Episode, kinds, opened


def _session(
    episode: Episode, session: int, instrument: str, **scores: str | int
) -> list[AlertChange]:
    changes: list[AlertChange] = []
    for role, total in scores.items():
        changes += episode.add(session, instrument, total, role=role)
    return changes


def _splits(changes: list[AlertChange]) -> list[tuple[str, int]]:
    return [(c.action, c.session) for c in changes if c.kind == "split_alliance"]


def test_split_opens_when_two_respondents_in_concern_differ_by_exactly_reliable_change() -> None:
    episode = Episode()

    changes = _session(episode, 3, "srs", client="35.0", partner="30.0")

    (split,) = opened(changes, "split_alliance")
    assert split.severity == "routine"
    assert split.rule == "rule-6-split-alliance"
    assert split.respondent_id is None and split.instrument is None  # one per episode
    assert split.triggered_by == "ep-1-p"
    assert split.inputs["difference"] == 5.0
    assert split.inputs["threshold"] == 5.0
    assert split.inputs["instrument"] == "srs"


def test_no_split_when_two_respondents_in_concern_differ_by_a_tenth_less() -> None:
    assert _splits(_session(Episode(), 3, "srs", client="35.0", partner="30.1")) == []


def test_split_opens_when_one_is_in_concern_and_the_other_is_not_however_close() -> None:
    changes = _session(Episode(), 3, "srs", client="36.0", partner="35.9")

    (split,) = opened(changes, "split_alliance")
    assert split.inputs["in_concern"] == 1
    assert split.inputs["not_in_concern"] == 1


def test_split_opens_on_an_item_below_9_alone() -> None:
    episode = Episode()
    episode.add(3, "srs", "38.0", role="client")

    changes = episode.add(3, "srs", "38.0", role="partner", lowest="8.9")

    assert _splits(changes) == [("open", 3)]


def test_no_split_when_both_are_out_of_concern() -> None:
    assert _splits(_session(Episode(), 3, "srs", client="36.0", partner="40.0")) == []


def test_wai_sr_split_at_a_difference_of_exactly_7_and_not_at_6() -> None:
    assert _splits(_session(Episode(), 3, "wai-sr", client=60, partner=53)) == [("open", 3)]
    assert _splits(_session(Episode(), 3, "wai-sr", client=60, partner=54)) == []


def test_respondents_on_different_instruments_are_not_compared() -> None:
    episode = Episode()
    changes = episode.add(3, "srs", "40.0", role="client")
    changes += episode.add(3, "wai-sr", 30, role="partner")
    assert _splits(changes) == []


def test_the_therapist_is_not_part_of_a_split() -> None:
    episode = Episode()
    changes = episode.add(3, "wai-sr", 60, role="client")
    changes += episode.add(3, "wai-sr-t", 20, role="therapist")

    assert _splits(changes) == []


def test_three_respondents_split_when_any_two_differ_by_reliable_change() -> None:
    changes = _session(Episode(), 3, "srs", client="33.0", partner="31.0", family="28.0")

    assert _splits(changes) == [("open", 3)]


def test_at_most_one_split_is_open_per_episode() -> None:
    episode = Episode()
    changes = _session(episode, 3, "srs", client="36.0", partner="30.0")
    changes += _session(episode, 4, "srs", client="36.0", partner="30.0")
    changes += _session(episode, 4, "wai-sr", client=60, partner=40)

    assert _splits(changes) == [("open", 3)]


def test_split_resolves_at_the_next_session_checked_where_it_does_not_hold() -> None:
    episode = Episode()
    _session(episode, 3, "srs", client="36.0", partner="30.0")

    assert _splits(_session(episode, 4, "srs", client="38.0", partner="37.0")) == [("resolve", 4)]


def test_split_is_not_resolved_in_a_session_where_only_one_respondent_answered() -> None:
    episode = Episode()
    _session(episode, 3, "srs", client="36.0", partner="30.0")

    assert _splits(_session(episode, 4, "srs", client="38.0")) == []
    assert len(episode.open_now("split_alliance")) == 1


def test_a_split_that_stops_holding_recurs_as_a_new_alert() -> None:
    episode = Episode()
    changes = _session(episode, 3, "srs", client="36.0", partner="30.0")
    changes += _session(episode, 4, "srs", client="38.0", partner="37.0")
    changes += _session(episode, 5, "srs", client="38.0", partner="33.0")

    assert _splits(changes) == [("open", 3), ("resolve", 4), ("open", 5)]
    assert kinds(changes).count(("open", "split_alliance")) == 2
