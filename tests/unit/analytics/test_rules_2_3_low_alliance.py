"""Rule 2 — low_alliance: a client-side alliance score in concern (SRS: total < 36 or any item
< 9; WAI-SR: total < 36). Rule 3 — early_alliance_risk: low alliance at session 1 or 2, once per
respondent."""

from __future__ import annotations

from services.analytics.domain import RuleConfig
from tests.unit.analytics.builders import Episode, kinds, opened, resolved


def test_srs_total_of_exactly_36_with_every_item_9_is_not_low_alliance() -> None:
    assert opened(Episode().add(1, "srs", "36.0")) == []


def test_srs_total_of_35_9_is_low_alliance() -> None:
    (low,) = opened(Episode().add(3, "srs", "35.9"))

    assert low.kind == "low_alliance"
    assert low.severity == "routine"
    assert low.rule == "rule-2-low-alliance"
    assert low.inputs["score"] == 35.9
    assert low.inputs["concern_total_below"] == 36
    assert low.inputs["concern_any_item_below"] == 9


def test_srs_item_of_8_9_is_low_alliance_even_with_a_total_well_above_36() -> None:
    (low,) = opened(Episode().add(3, "srs", "38.9", lowest="8.9"))

    assert low.kind == "low_alliance"
    assert low.inputs["lowest_item"] == 8.9


def test_srs_lowest_item_of_exactly_9_is_not_low_alliance() -> None:
    assert opened(Episode().add(3, "srs", "38.0", lowest="9.0")) == []


def test_wai_sr_total_of_36_is_not_low_alliance_and_35_is() -> None:
    assert opened(Episode().add(3, "wai-sr", 36)) == []
    assert kinds(Episode().add(3, "wai-sr", 35)) == [("open", "low_alliance")]


def test_at_most_one_low_alliance_is_open_per_respondent_while_the_concern_lasts() -> None:
    episode = Episode()

    episode.series("srs", "35.0", "34.0", "35.5", first_session=3)

    assert len(episode.opened("low_alliance")) == 1
    assert len(episode.open_now("low_alliance")) == 1


def test_low_alliance_resolves_when_the_score_leaves_concern_and_a_recurrence_opens_a_new_one() -> (
    None
):
    episode = Episode()

    episode.series("srs", "35.0", "36.0", "35.9", first_session=3)

    assert [(c.action, c.session) for c in episode.changes if c.kind == "low_alliance"] == [
        ("open", 3),
        ("resolve", 4),
        ("open", 5),
    ]
    assert episode.resolved("low_alliance")[0].opened_session == 3


def test_each_client_side_respondent_has_their_own_low_alliance() -> None:
    episode = Episode()

    episode.add(3, "srs", "35.0", role="client")
    episode.add(3, "srs", "33.0", role="partner")
    episode.add(3, "srs", "34.0", role="family")

    assert [c.respondent_id for c in episode.opened("low_alliance")] == [
        "ep-1-c",
        "ep-1-p",
        "ep-1-f",
    ]


def test_the_therapists_own_low_rating_is_not_low_alliance() -> None:
    assert opened(Episode().add(3, "wai-sr-t", 20, role="therapist")) == []


def test_early_alliance_risk_opens_with_low_alliance_at_session_1() -> None:
    changes = Episode().add(1, "srs", "35.9")

    assert kinds(changes) == [("open", "low_alliance"), ("open", "early_alliance_risk")]
    early = changes[1]
    assert early.severity == "high"
    assert early.rule == "rule-3-early-alliance-risk"
    assert early.inputs["session"] == 1
    assert early.suggestion_code == "relationship_conversation_next_session"


def test_early_alliance_risk_opens_with_low_alliance_at_session_2() -> None:
    episode = Episode()
    episode.add(1, "srs", "36.0")

    assert kinds(episode.add(2, "srs", "35.9")) == [
        ("open", "low_alliance"),
        ("open", "early_alliance_risk"),
    ]


def test_low_alliance_at_session_3_is_not_early_alliance_risk() -> None:
    episode = Episode()
    episode.series("srs", "36.0", "36.0")

    assert kinds(episode.add(3, "srs", "35.9")) == [("open", "low_alliance")]


def test_early_alliance_risk_fires_once_per_respondent_even_on_another_instrument() -> None:
    episode = Episode()

    episode.add(1, "srs", "35.0")
    episode.add(2, "srs", "38.0")
    episode.add(2, "wai-sr", 30)

    assert len(episode.opened("early_alliance_risk")) == 1
    assert len(episode.opened("low_alliance")) == 2


def test_early_alliance_risk_resolves_with_the_low_alliance() -> None:
    episode = Episode()
    episode.add(1, "srs", "35.0")

    changes = episode.add(2, "srs", "37.0")

    assert kinds(resolved(changes)) == [
        ("resolve", "low_alliance"),
        ("resolve", "early_alliance_risk"),
    ]


def test_a_site_can_count_session_3_as_early() -> None:
    episode = Episode(RuleConfig.for_site({"early_alliance_sessions": [1, 2, 3]}))
    episode.series("srs", "36.0", "36.0")

    assert ("open", "early_alliance_risk") in kinds(episode.add(3, "srs", "35.9"))
