"""Goal ratings and support as instruments: open items (the episode's goal ids) checked and
scored by feedback's domain; the instrument schema accepts fixed items or open items, not both."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.feedback import domain
from shared.instruments import SHIPPED, Instrument, load_instruments

INSTRUMENTS = load_instruments(SHIPPED)
GOALS = INSTRUMENTS["goals"]
SUPPORT = INSTRUMENTS["support"]


def rules(errors: list[domain.AnswerError]) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in errors]


def test_goal_ratings_name_the_episodes_goals_and_score_their_mean() -> None:
    answers: dict[str, object] = {"g-1": 3, "g-2": 4, "g-3": 4}
    assert domain.check_answers(GOALS, "client", answers, {"g-1", "g-2", "g-3", "g-4"}) == []
    scored = domain.score(GOALS, answers)
    assert scored.items == {"g-1": 3, "g-2": 4, "g-3": 4}
    assert scored.total == Decimal("3.67") and not scored.in_concern_or_clinical_range


def test_a_rating_for_a_goal_the_episode_does_not_have_is_refused_naming_it() -> None:
    errors = domain.check_answers(GOALS, "client", {"g-1": 3, "g-9": 4}, {"g-1", "g-2"})
    assert rules(errors) == [("items.g-9", "unknown_goal")]


def test_goal_ratings_are_0_to_10_on_whole_steps() -> None:
    errors = domain.check_answers(GOALS, "client", {"g-1": 11, "g-2": 2.5, "g-3": -1}, None)
    assert rules(errors) == [
        ("items.g-1", "out_of_range"),
        ("items.g-2", "off_step"),
        ("items.g-3", "out_of_range"),
    ]


def test_no_rating_at_all_more_than_five_or_a_malformed_id_is_refused() -> None:
    assert rules(domain.check_answers(GOALS, "client", {}, None)) == [("items", "missing")]
    six: dict[str, object] = {f"g-{i}": 5 for i in range(6)}
    assert ("items", "too_many_items") in rules(domain.check_answers(GOALS, "client", six, None))
    bad = domain.check_answers(GOALS, "client", {"Goal one": 5}, None)
    assert rules(bad) == [("items.Goal one", "unknown_item")]


def test_support_is_one_item_from_0_to_10_for_the_client() -> None:
    assert domain.check_answers(SUPPORT, "client", {"support": 4}) == []
    assert domain.score(SUPPORT, {"support": 4}).total == 4
    assert rules(domain.check_answers(SUPPORT, "partner", {"support": 11})) == [
        ("respondent_role", "role_not_allowed"),
        ("items.support", "out_of_range"),
    ]


def test_goals_and_support_are_their_own_kinds_without_a_direction() -> None:
    assert (GOALS.kind, SUPPORT.kind) == ("goals", "support")
    assert GOALS.clinical is None and SUPPORT.clinical is None and GOALS.concern is None


def test_an_instrument_has_fixed_items_or_open_items_not_both() -> None:
    base = GOALS.model_dump()
    with pytest.raises(ValidationError, match="either fixed items or open_items"):
        Instrument.model_validate({**base, "items": ["a"]})
    with pytest.raises(ValidationError, match="either fixed items or open_items"):
        Instrument.model_validate({**base, "open_items": None})
