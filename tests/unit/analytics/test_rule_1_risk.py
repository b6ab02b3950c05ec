"""Rule 1 — risk: any risk item above 0 (PHQ-9 item 9); urgent; fires for every such response."""

from __future__ import annotations

from tests.unit.analytics.builders import Episode, opened


def test_risk_opens_when_phq9_item_9_is_1() -> None:
    episode = Episode()

    changes = episode.add(1, "phq-9", 5, item_9=1)

    (risk,) = opened(changes, "risk")
    assert risk.severity == "urgent"
    assert risk.rule == "rule-1-risk"
    assert risk.respondent_id == "ep-1-c"
    assert risk.instrument == "phq-9"
    assert risk.inputs["item_9"] == 1
    assert risk.inputs["threshold"] == 0
    assert risk.suggestion_code == "contact_client_now_and_assess_risk"
    assert risk.suggestion


def test_no_risk_when_phq9_item_9_is_0_however_high_the_total() -> None:
    episode = Episode()

    assert opened(episode.add(1, "phq-9", 24, item_9=0), "risk") == []


def test_risk_fires_for_every_response_with_a_risk_item_above_0() -> None:
    episode = Episode()

    for session in (1, 2, 3):
        episode.add(session, "phq-9", 12, item_9=session)

    assert [c.session for c in episode.opened("risk")] == [1, 2, 3]


def test_risk_is_an_event_that_stays_nothing_to_resolve() -> None:
    episode = Episode()

    (risk,) = episode.add(1, "phq-9", 12, item_9=3)
    episode.add(2, "phq-9", 3, item_9=0)

    assert risk.lasting is False
    assert episode.open_now("risk") == []
    assert episode.resolved("risk") == []


def test_a_risk_alert_awaits_a_clinicians_acknowledgement_and_no_other_alert_does() -> None:
    """No rule resolves a risk alert; it stays open until a clinician acknowledges it."""
    episode = Episode()

    (risk,) = episode.add(1, "phq-9", 12, item_9=1)
    others = episode.add(1, "srs", 38) + episode.add(2, "srs", 28) + episode.add(3, "srs", 38)

    assert risk.awaits_acknowledgement is True
    assert {c.kind for c in others} >= {"rupture", "repair"}
    assert [c.kind for c in others if c.awaits_acknowledgement] == []


def test_instruments_without_risk_items_never_raise_risk() -> None:
    episode = Episode()

    changes = episode.add(1, "gad-7", 21) + episode.add(1, "ors", "0.0")

    assert opened(changes, "risk") == []
