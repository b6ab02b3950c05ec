"""Rule 7 — rating_discrepancy: in one session the therapist's alliance score is above the
client's by at least RC; on a 0–100 scale with the larger RC when the instruments differ. At most
one open per episode, resolved at the next session where it is checked and does not hold."""

from __future__ import annotations

from typing import Any

from shared.instruments import Instrument
from tests.unit.analytics.builders import INSTRUMENTS, Episode, opened

# An alliance instrument both client and therapist answer (to test the same-instrument case).
SHARED_SCALE = Instrument.model_validate(
    {
        **INSTRUMENTS["srs"].model_dump(),
        "id": "srs-shared",
        "respondents": ["client", "partner", "family", "therapist"],
    }
)
WITH_SHARED = {**INSTRUMENTS, "srs-shared": SHARED_SCALE}


def _session(
    episode: Episode, session: int, therapist: tuple[str, Any], client: tuple[str, Any]
) -> list[tuple[str, int]]:
    changes = episode.add(session, client[0], client[1], role="client")
    changes += episode.add(session, therapist[0], therapist[1], role="therapist")
    return [(c.action, c.session) for c in changes if c.kind == "rating_discrepancy"]


def test_discrepancy_opens_when_therapist_wai_is_exactly_7_above_the_clients() -> None:
    episode = Episode()

    assert _session(episode, 3, ("wai-sr-t", 47), ("wai-sr", 40)) == [("open", 3)]
    (alert,) = episode.opened("rating_discrepancy")
    assert alert.severity == "routine"
    assert alert.rule == "rule-7-rating-discrepancy"
    assert alert.respondent_id is None
    assert alert.triggered_by == "ep-1-t"
    assert alert.inputs["therapist_score"] == 47
    assert alert.inputs["client_score"] == 40
    assert alert.inputs["difference"] == 14.58  # on the 0-100 scale: 7 / 48 × 100
    assert alert.inputs["threshold"] == 14.58


def test_no_discrepancy_when_the_therapist_is_6_above() -> None:
    assert _session(Episode(), 3, ("wai-sr-t", 46), ("wai-sr", 40)) == []


def test_no_discrepancy_when_the_therapist_rates_lower_than_the_client() -> None:
    assert _session(Episode(), 3, ("wai-sr-t", 20), ("wai-sr", 60)) == []


def test_same_instrument_discrepancy_at_exactly_reliable_change_and_not_a_tenth_below() -> None:
    fired = Episode(instruments=WITH_SHARED)
    not_fired = Episode(instruments=WITH_SHARED)

    assert _session(fired, 3, ("srs-shared", "38.0"), ("srs-shared", "33.0")) == [("open", 3)]
    assert _session(not_fired, 3, ("srs-shared", "38.0"), ("srs-shared", "33.1")) == []
    assert fired.opened("rating_discrepancy")[0].inputs["difference"] == 5.0
    assert "scale" not in fired.opened("rating_discrepancy")[0].inputs


def test_cross_instrument_discrepancy_on_the_0_to_100_scale_with_the_larger_rc() -> None:
    """Client SRS 30.0 is 75 on 0-100; the larger RC is WAI-SR-T's 7/48 = 14.583…; therapist
    WAI-SR-T 55 is (55 − 12)/48 = 89.583…, exactly 14.583… above: it fires, with no rounding."""
    episode = Episode()

    assert _session(episode, 3, ("wai-sr-t", 55), ("srs", "30.0")) == [("open", 3)]
    inputs = episode.opened("rating_discrepancy")[0].inputs
    assert inputs["scale"] == "0-100"
    assert inputs["client_scaled"] == 75.0
    assert inputs["therapist_scaled"] == 89.58
    assert inputs["threshold"] == 14.58


def test_cross_instrument_discrepancy_one_step_either_side() -> None:
    assert _session(Episode(), 3, ("wai-sr-t", 54), ("srs", "30.0")) == []
    assert _session(Episode(), 3, ("wai-sr-t", 55), ("srs", "30.1")) == []
    assert _session(Episode(), 3, ("wai-sr-t", 55), ("srs", "29.9")) == [("open", 3)]


def test_discrepancy_is_checked_whichever_of_the_two_answers_last() -> None:
    episode = Episode()
    changes = episode.add(3, "wai-sr-t", 50, role="therapist")
    changes += episode.add(3, "wai-sr", 40, role="client")

    assert [c.triggered_by for c in opened(changes, "rating_discrepancy")] == ["ep-1-c"]


def test_the_clients_score_is_compared_on_the_paired_instrument_when_they_answered_several() -> (
    None
):
    episode = Episode()
    episode.add(3, "wai-sr", 40, role="client")
    episode.add(3, "srs", "40.0", role="client")  # latest, but WAI-SR is WAI-SR-T's pair

    changes = episode.add(3, "wai-sr-t", 47, role="therapist")

    assert [c.inputs["client_instrument"] for c in opened(changes, "rating_discrepancy")] == [
        "wai-sr"
    ]


def test_a_partners_rating_is_not_the_clients() -> None:
    episode = Episode()
    episode.add(3, "wai-sr", 30, role="partner")

    assert opened(episode.add(3, "wai-sr-t", 60, role="therapist"), "rating_discrepancy") == []


def test_at_most_one_discrepancy_is_open_and_it_resolves_at_the_next_session_checked() -> None:
    episode = Episode()
    _session(episode, 3, ("wai-sr-t", 50), ("wai-sr", 40))
    _session(episode, 4, ("wai-sr-t", 52), ("wai-sr", 40))
    episode.add(5, "wai-sr", 40, role="client")  # the therapist did not rate: not checked
    _session(episode, 6, ("wai-sr-t", 45), ("wai-sr", 40))
    _session(episode, 7, ("wai-sr-t", 50), ("wai-sr", 40))

    assert [(c.action, c.session) for c in episode.changes if c.kind == "rating_discrepancy"] == [
        ("open", 3),
        ("resolve", 6),
        ("open", 7),
    ]
