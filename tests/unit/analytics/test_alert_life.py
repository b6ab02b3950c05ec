"""An alert's life (shared/alert_life.py): each step announced once, in order; an alert that
ended never reopens, whatever arrives after (a replay, a reordering across partitions); and the
follow-up rules of analytics' domain (risk closes only after an action, the site's codes)."""

from __future__ import annotations

import pytest

from services.analytics.domain.followup import (
    DEFAULT_ACTION_CODES,
    action_on_ended_is_conflict,
    may_close,
    unknown_action,
)
from services.analytics.rules_config import RuleConfig
from shared.alert_life import AlertLife, replay, take


def test_the_whole_life_is_announced_in_order() -> None:
    announced, life = replay(["opened", "acknowledged", "action_recorded", "resolved"])
    assert announced == ["opened", "acknowledged", "action_recorded", "resolved"]
    assert life.ended and life.actions == 1


def test_each_step_is_announced_once_when_replayed() -> None:
    steps = ["opened", "opened", "acknowledged", "acknowledged", "closed", "closed"]
    announced, _ = replay(steps)  # type: ignore[arg-type]
    assert announced == ["opened", "acknowledged", "closed"]


def test_a_resolution_before_the_opening_leaves_the_alert_resolved() -> None:
    announced, life = replay(["resolved", "opened", "acknowledged"])
    assert announced == ["resolved"]
    assert life.ended and "opened" not in life.announced


def test_a_closed_alert_is_not_resolved_again_nor_a_resolved_one_closed_again() -> None:
    assert replay(["opened", "closed", "resolved"])[0] == ["opened", "closed"]
    assert replay(["opened", "resolved", "closed"])[0] == ["opened", "resolved"]


def test_every_action_is_announced_even_after_the_condition_cleared() -> None:
    announced, life = replay(["opened", "action_recorded", "resolved", "action_recorded"])
    assert announced == ["opened", "action_recorded", "resolved", "action_recorded"]
    assert life.actions == 2


def test_seen_after_an_action_is_recorded_but_not_announced_out_of_order() -> None:
    decision = take(AlertLife(frozenset({"opened", "action_recorded"}), 1), "acknowledged")
    assert not decision.announce and "acknowledged" in decision.life.announced


@pytest.mark.parametrize(
    ("kind", "actions", "allowed"),
    [
        ("risk", 0, False),
        ("risk", 1, True),
        ("rupture", 0, True),
        ("not_on_track", 0, True),
    ],
)
def test_a_risk_alert_closes_only_after_an_action(kind: str, actions: int, allowed: bool) -> None:
    assert may_close(kind, actions) is allowed


def test_actions_are_refused_only_on_alerts_a_clinician_closed() -> None:
    assert action_on_ended_is_conflict("closed")
    assert not action_on_ended_is_conflict("resolved")
    assert not action_on_ended_is_conflict("open")


def test_the_coded_actions_are_per_site_data() -> None:
    assert RuleConfig().action_codes == DEFAULT_ACTION_CODES
    assert len(DEFAULT_ACTION_CODES) == 8
    site = RuleConfig.for_site({"action_codes": ["discussed_in_session", "called_the_gp"]})
    assert site.action_codes == ("discussed_in_session", "called_the_gp")
    assert unknown_action("safety_plan", site.action_codes)
    assert not unknown_action("called_the_gp", site.action_codes)
    with pytest.raises(ValueError, match="action_codes"):
        RuleConfig.for_site({"action_codes": ["Not A Code"]})


def test_each_step_taken_moves_the_alert_further_along() -> None:
    """A step's place in the alert's life (its webhooks wait for earlier steps'): it grows with
    each first step and with each further action, even one recorded after the alert ended."""
    life, places = AlertLife(), []
    for step in ["opened", "acknowledged", "action_recorded", "action_recorded", "resolved"]:
        life = take(life, step).life  # type: ignore[arg-type]
        places.append(life.position)
    life = take(life, "action_recorded").life
    places.append(life.position)
    assert places == [1, 2, 3, 4, 5, 6]
    assert AlertLife().position == 0
    reordered = take(take(AlertLife(), "acknowledged").life, "opened").life
    assert reordered.position == 2  # an opening that arrives late comes after what was told
