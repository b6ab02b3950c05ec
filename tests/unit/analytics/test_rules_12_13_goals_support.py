"""Rules 12 (goals_not_progressing) and 13 (low_support) at each threshold: session 5 vs 6,
a goal +2 vs +3 above its own first rating, support 4 vs 5, session 3 vs 4, resolving at 6 and
not 5, once per episode."""

from __future__ import annotations

from typing import Any

from services.analytics.domain import (
    GOALS_NOT_PROGRESSING,
    LOW_SUPPORT,
    RULE_IDS,
    SEVERITY,
    SUGGESTIONS,
    EpisodeState,
    RuleConfig,
)
from tests.unit.analytics.builders import Episode


def goals(episode: Episode, session: int, role: str = "client", **ratings: int) -> Any:
    return episode.add(session, "goals", items=dict(ratings), role=role)


def support(episode: Episode, session: int, rating: int) -> Any:
    return episode.add(session, "support", items={"support": rating})


def flat_goals(episode: Episode, sessions: range, **ratings: int) -> None:
    for s in sessions:
        goals(episode, s, **ratings)


def test_goals_not_progressing_waits_for_session_6() -> None:
    ep = Episode()
    flat_goals(ep, range(1, 6), g1=2, g2=4)
    assert ep.opened(GOALS_NOT_PROGRESSING) == []

    goals(ep, 6, g1=2, g2=4)

    [alert] = ep.opened(GOALS_NOT_PROGRESSING)
    assert (alert.session, alert.severity, alert.rule) == (6, "routine", RULE_IDS[alert.kind])
    assert alert.inputs["largest_change"] == 0 and alert.inputs["threshold"] == 3


def test_a_goal_two_points_up_is_not_progress_three_is() -> None:
    two = Episode()
    goals(two, 1, g1=2, g2=5)
    flat_goals(two, range(2, 7), g1=4, g2=5)
    assert len(two.opened(GOALS_NOT_PROGRESSING)) == 1

    three = Episode()
    goals(three, 1, g1=2, g2=5)
    flat_goals(three, range(2, 7), g1=5, g2=5)
    assert three.opened(GOALS_NOT_PROGRESSING) == []


def test_each_goal_counts_from_its_own_first_rating() -> None:
    ep = Episode()
    goals(ep, 1, g1=1)
    goals(ep, 4, g1=1, g2=6)  # g2 first rated at 6: 7 later is +1, not +6 over g1's first
    goals(ep, 6, g1=2, g2=7)
    assert len(ep.opened(GOALS_NOT_PROGRESSING)) == 1


def test_it_resolves_when_a_goal_moves_by_three_and_can_open_again() -> None:
    ep = Episode()
    flat_goals(ep, range(1, 7), g1=3)
    goals(ep, 7, g1=5)
    assert ep.resolved(GOALS_NOT_PROGRESSING) == []

    goals(ep, 8, g1=6)
    [resolve] = ep.resolved(GOALS_NOT_PROGRESSING)
    assert resolve.session == 8 and ep.open_now(GOALS_NOT_PROGRESSING) == []

    goals(ep, 9, g1=4)
    assert len(ep.opened(GOALS_NOT_PROGRESSING)) == 2


def test_the_therapists_goal_ratings_open_nothing() -> None:
    ep = Episode()
    for s in range(1, 8):
        goals(ep, s, role="therapist", g1=3)
    assert ep.opened(GOALS_NOT_PROGRESSING) == []


def test_session_6_is_a_setting() -> None:
    ep = Episode(RuleConfig.for_site({"goals_not_progressing_session": 8}))
    flat_goals(ep, range(1, 8), g1=3)
    assert ep.opened(GOALS_NOT_PROGRESSING) == []
    goals(ep, 8, g1=3)
    assert len(ep.opened(GOALS_NOT_PROGRESSING)) == 1


def test_support_4_is_low_5_is_not() -> None:
    five = Episode()
    support(five, 1, 5)
    assert five.opened(LOW_SUPPORT) == []

    four = Episode()
    support(four, 1, 4)
    [alert] = four.opened(LOW_SUPPORT)
    assert (alert.severity, alert.rule) == (SEVERITY[LOW_SUPPORT], "rule-13-low-support")
    assert alert.inputs["rating"] == 4 and alert.inputs["at_most"] == 4


def test_low_support_opens_at_session_3_not_4() -> None:
    at_three = Episode()
    support(at_three, 3, 4)
    assert len(at_three.opened(LOW_SUPPORT)) == 1

    at_four = Episode()
    support(at_four, 1, 7)
    support(at_four, 4, 2)
    assert at_four.opened(LOW_SUPPORT) == []


def test_low_support_resolves_at_a_later_6_not_5() -> None:
    ep = Episode()
    support(ep, 1, 3)
    support(ep, 2, 5)
    assert ep.resolved(LOW_SUPPORT) == []
    support(ep, 3, 6)
    [resolve] = ep.resolved(LOW_SUPPORT)
    assert resolve.session == 3 and resolve.opened_session == 1


def test_low_support_opens_once_per_episode() -> None:
    ep = Episode()
    support(ep, 1, 2)
    support(ep, 2, 8)
    support(ep, 3, 1)
    assert len(ep.opened(LOW_SUPPORT)) == 1 and len(ep.resolved(LOW_SUPPORT)) == 1


def test_the_suggestion_speaks_of_the_people_around_the_client_and_consent() -> None:
    code, text = SUGGESTIONS[LOW_SUPPORT]
    assert code == "discuss_people_around_the_client"
    assert "people around" in text and "consent" in text and "inviting one of them" in text


def test_goal_firsts_and_the_once_flag_survive_the_state_round_trip() -> None:
    ep = Episode()
    support(ep, 1, 2)
    flat_goals(ep, range(1, 6), g1=3)
    assert ep.state is not None
    ep.state = EpisodeState.from_json(ep.state.to_json())
    support(ep, 2, 9)
    support(ep, 3, 1)
    goals(ep, 6, g1=5)
    assert len(ep.opened(LOW_SUPPORT)) == 1
    assert len(ep.opened(GOALS_NOT_PROGRESSING)) == 1  # +2 over the kept first of 3


def test_goals_and_support_are_neither_alliance_nor_outcome() -> None:
    ep = Episode()
    for s in range(1, 8):
        support(ep, s, 0 if s > 3 else 10)
        goals(ep, s, g1=10 if s == 1 else 0)
    assert {c.kind for c in ep.opened()} <= {GOALS_NOT_PROGRESSING, "dropout_risk"}


def test_a_late_first_rating_re_evaluates_the_goals() -> None:
    ep = Episode()
    for s in range(2, 7):
        goals(ep, s, g1=3)
    assert len(ep.opened(GOALS_NOT_PROGRESSING)) == 1

    late = goals(ep, 1, g1=0)  # the goal's true first rating: session 6's 3 is +3

    goal_changes = [(c.action, c.kind) for c in late if c.kind == GOALS_NOT_PROGRESSING]
    assert goal_changes == [("resolve", GOALS_NOT_PROGRESSING)]
    assert ep.open_now(GOALS_NOT_PROGRESSING) == []
