"""Proposals: the top options with their reasons, the closest options when nothing fits, and
rematch (docs/clinical-rules.md, Matching; issue 3, capabilities 3, 6 and 7)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.domain.matching import (
    CONSTRAINTS,
    DomainReference,
    EffectivenessTable,
    MatchingConfig,
    Roster,
    Therapist,
    hard_constraints,
    propose,
    score,
)
from tests.unit.intake.builders import (
    CLIENT,
    NOW,
    intake,
    preferences,
    preferred,
    random_network,
    record,
    required,
    therapist,
)

CONFIG = MatchingConfig()
REFERENCE = {"depression": DomainReference(improvement=0.45)}


def team(*improvements: float) -> tuple[list[Therapist], EffectivenessTable]:
    """Therapists th-1, th-2 … identical but for their depression estimate."""
    people = [therapist(f"th-{k}") for k in range(1, len(improvements) + 1)]
    effects = EffectivenessTable(
        [record(t.id, "depression", p) for t, p in zip(people, improvements, strict=True)],
        REFERENCE,
    )
    return people, effects


# --- options ----------------------------------------------------------------------------------


def test_the_three_best_are_offered_best_first() -> None:
    people, effects = team(0.45, 0.60, 0.50, 0.55, 0.40)
    proposal = propose(intake(), people, effects, CONFIG, NOW)
    assert proposal.status == "matched"
    assert [o.therapist_id for o in proposal.options] == ["th-2", "th-4", "th-3"]
    assert [o.rank for o in proposal.options] == [1, 2, 3]
    assert proposal.eligible == 5 and proposal.considered == 5


def test_the_number_of_options_is_configurable() -> None:
    people, effects = team(0.45, 0.60, 0.50, 0.55, 0.40)
    assert len(propose(intake(), people, effects, CONFIG, NOW, top=1).options) == 1
    five = MatchingConfig.for_site({"top": 5})
    assert len(propose(intake(), people, effects, five, NOW).options) == 5


def test_fewer_eligible_than_wanted_offers_those_there_are() -> None:
    people, effects = team(0.45, 0.60)
    assert len(propose(intake(), people, effects, CONFIG, NOW).options) == 2


def test_equal_scores_are_ordered_by_therapist_id() -> None:
    people = [therapist(f"th-{k}") for k in (5, 3, 9, 1)]
    proposal = propose(intake(), people, [], CONFIG, NOW)
    assert [o.therapist_id for o in proposal.options] == ["th-1", "th-3", "th-5"]


def test_every_option_explains_its_constraints_and_every_score_part() -> None:
    people, effects = team(0.45, 0.60, 0.50)
    client = intake(preferences=preferences(gender=preferred("woman")))
    proposal = propose(client, people, effects, CONFIG, NOW)
    for option in proposal.options:
        assert option.violated == ()
        assert all(c.held and c.detail for c in option.constraints)
        assert {c.code for c in option.constraints} >= {"language", "location", "capacity"}
        assert [p.code for p in option.score.parts] == [
            "effectiveness",
            "specialty",
            "gender",
            "experience",
            "wait",
            "caseload",
        ]
        assert all(p.detail for p in option.score.parts)
        assert option.explanation.startswith("Meets every hard constraint. Score ")
    assert proposal.summary == "3 of 3 therapists meet every hard constraint; offering the best 3."


def test_an_option_scores_exactly_as_score_says() -> None:
    people, effects = team(0.45, 0.60, 0.50)
    proposal = propose(intake(), people, effects, CONFIG, NOW)
    for option in proposal.options:
        alone = score(intake(), people[int(option.therapist_id[3:]) - 1], effects, CONFIG, NOW)
        assert option.score == alone


def test_a_required_preference_filters_and_a_preferred_one_ranks() -> None:
    people = [therapist("th-1", gender="man"), therapist("th-2", gender="woman")]
    wants_man = intake(preferences=preferences(gender=required("man")))
    assert [o.therapist_id for o in propose(wants_man, people, [], CONFIG, NOW).options] == ["th-1"]
    prefers_man = intake(preferences=preferences(gender=preferred("man")))
    ranked = propose(prefers_man, people, [], CONFIG, NOW).options
    assert [o.therapist_id for o in ranked] == ["th-1", "th-2"]
    assert ranked[0].score.part("gender").points == 1.0
    assert ranked[1].score.part("gender").points == 0.0


# --- nothing fits: the closest options and what excluded the rest ------------------------------


def test_when_nobody_fits_the_closest_are_offered_cheapest_violation_first() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    people = [
        therapist("th-lang", languages=frozenset({"es"})),  # language: relaxation cost 6
        therapist("th-man", gender="man"),  # gender: cost 1
        therapist("th-far", sites=frozenset({"site-b"})),  # location: cost 3
    ]
    proposal = propose(client, people, [], CONFIG, NOW)
    assert proposal.status == "closest"
    assert [o.therapist_id for o in proposal.options] == ["th-man", "th-far", "th-lang"]
    assert [o.violated for o in proposal.options] == [("gender",), ("location",), ("language",)]
    first = proposal.options[0]
    assert first.explanation.startswith(
        "Misses 1 hard constraint(s): Required gender woman: not met"
    )


def test_fewer_violations_come_before_more() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    people = [
        therapist("th-2", gender="man", caseload=10),  # gender + capacity: 1 + 4
        therapist("th-1", languages=frozenset({"es"})),  # language: 6
        therapist("th-3", gender="man"),  # gender: 1
    ]
    proposal = propose(client, people, [], CONFIG, NOW)
    assert [o.therapist_id for o in proposal.options] == ["th-3", "th-2", "th-1"]


def test_relaxation_costs_are_a_site_setting() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    people = [therapist("th-man", gender="man"), therapist("th-lang", languages=frozenset({"es"}))]
    site = MatchingConfig.for_site({"relaxation_costs": {"gender": 10}})
    proposal = propose(client, people, [], site, NOW)
    assert [o.therapist_id for o in proposal.options] == ["th-lang", "th-man"]


def test_every_constraint_says_how_many_it_excluded_and_how_many_for_that_alone() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    people = [
        therapist("th-1", languages=frozenset({"es"})),
        therapist("th-2", languages=frozenset({"es"}), gender="man"),
        therapist("th-3", gender="man"),
        therapist("th-4", active=False),
    ]
    proposal = propose(client, people, [], CONFIG, NOW)
    counts = {e.constraint: (e.excluded, e.only_reason) for e in proposal.exclusions}
    assert counts["language"] == (2, 1)
    assert counts["gender"] == (2, 1)
    assert counts["active"] == (1, 1)
    assert counts["capacity"] == (0, 0)
    assert list(counts) == [c for c in CONSTRAINTS if c not in ("culture_faith", "modality")]
    assert "language excluded 2 (1 for that reason alone)" in proposal.summary


def test_inactive_conflicted_and_excluded_therapists_are_never_offered() -> None:
    client = intake(excluded_therapists=frozenset({"th-declined"}), unit="couple")
    people = [
        therapist("th-inactive", active=False, scopes=frozenset({"adults", "couples"})),
        therapist(
            "th-conflict", exclusions=frozenset({CLIENT}), scopes=frozenset({"adults", "couples"})
        ),
        therapist("th-declined", scopes=frozenset({"adults", "couples"})),
        therapist("th-unscoped"),
    ]
    proposal = propose(client, people, [], CONFIG, NOW)
    assert proposal.status == "closest"
    assert [o.therapist_id for o in proposal.options] == ["th-unscoped"]
    assert proposal.options[0].violated == ("competence",)


def test_equal_cost_the_fewer_violated_constraints_come_first() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    people = [
        # location 3 + gender 1 = 4, in two constraints; a free caseload scores higher
        therapist("th-a", gender="man", sites=frozenset({"site-b"})),
        therapist("th-b", caseload=10),  # capacity: 4, in one constraint
    ]
    proposal = propose(client, people, [], CONFIG, NOW)
    assert [o.therapist_id for o in proposal.options] == ["th-b", "th-a"]
    assert proposal.options[0].score.total < proposal.options[1].score.total
    assert [o.violated for o in proposal.options] == [("capacity",), ("location", "gender")]


def test_equal_cost_and_misses_the_better_score_comes_first() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    people, effects = team(0.40, 0.70)
    people = [replace(t, gender="man") for t in people]
    proposal = propose(client, people, effects, CONFIG, NOW)
    assert [o.therapist_id for o in proposal.options] == ["th-2", "th-1"]
    assert proposal.options[0].score.total > proposal.options[1].score.total


def test_a_therapist_the_client_declined_comes_after_every_other_near_miss() -> None:
    client = intake(declined_therapists=frozenset({"th-declined"}))
    people = [
        therapist("th-declined"),  # meets everything else
        therapist("th-child-only", scopes=frozenset({"children_adolescents"})),  # competence: 8
        therapist("th-es", languages=frozenset({"es"})),  # language: 6
    ]
    proposal = propose(client, people, [], CONFIG, NOW)
    assert proposal.status == "closest" and proposal.eligible == 0
    assert [o.therapist_id for o in proposal.options] == ["th-es", "th-child-only", "th-declined"]
    declined = proposal.options[-1]
    assert declined.violated == ("not_declined",)
    [check] = [c for c in declined.constraints if not c.held]
    assert check.detail.startswith("Declined by the client for this intake")
    excluded = {e.constraint: (e.excluded, e.only_reason) for e in proposal.exclusions}
    assert excluded["not_declined"] == (1, 1)


def test_declined_therapists_are_not_offered_while_someone_meets_every_constraint() -> None:
    people, effects = team(0.70, 0.45)
    client = intake(declined_therapists=frozenset({"th-1"}))
    proposal = propose(client, people, effects, CONFIG, NOW)
    assert proposal.status == "matched"
    assert [o.therapist_id for o in proposal.options] == ["th-2"]


def test_when_the_only_therapist_was_declined_they_are_offered_again_marked_declined() -> None:
    client = intake(declined_therapists=frozenset({"th-1"}))
    proposal = propose(client, [therapist("th-1")], [], CONFIG, NOW)
    assert proposal.status == "closest"
    [option] = proposal.options
    assert option.therapist_id == "th-1" and option.violated == ("not_declined",)
    assert option.explanation.startswith("Misses 1 hard constraint(s): Declined by the client")


def test_only_inactive_conflicted_and_past_therapists_are_never_offered() -> None:
    client = intake(
        excluded_therapists=frozenset({"th-past"}), declined_therapists=frozenset({"th-declined"})
    )
    people = [
        therapist("th-inactive", active=False),
        therapist("th-conflict", exclusions=frozenset({CLIENT})),
        therapist("th-past"),
        therapist("th-declined", languages=frozenset({"es"})),
    ]
    proposal = propose(client, people, [], CONFIG, NOW)
    assert [o.therapist_id for o in proposal.options] == ["th-declined"]
    assert proposal.options[0].violated == ("not_declined", "language")
    alone = propose(client, people[:3], [], CONFIG, NOW)
    assert alone.status == "none" and alone.options == ()


def test_when_nobody_can_be_offered_at_all_the_reasons_still_come() -> None:
    people = [therapist("th-1", active=False), therapist("th-2", exclusions=frozenset({CLIENT}))]
    proposal = propose(intake(), people, [], CONFIG, NOW)
    assert proposal.status == "none" and proposal.options == ()
    counts = {e.constraint: e.excluded for e in proposal.exclusions}
    assert counts["active"] == 1 and counts["no_conflict"] == 1
    assert proposal.summary.startswith("No therapist of 2 can be offered")


def test_an_empty_registry_says_so() -> None:
    proposal = propose(intake(), [], [], CONFIG, NOW)
    assert proposal.status == "none" and proposal.summary == "No therapists are registered."


# --- rematch ----------------------------------------------------------------------------------


def test_rematch_never_offers_the_episode_past_therapists() -> None:
    people, effects = team(0.70, 0.60, 0.50, 0.45)
    first = propose(intake(), people, effects, CONFIG, NOW)
    assert first.options[0].therapist_id == "th-1"
    rematch = intake(excluded_therapists=frozenset({"th-1", "th-2"}))
    again = propose(rematch, people, effects, CONFIG, NOW)
    assert [o.therapist_id for o in again.options] == ["th-3", "th-4"]
    excluded = next(e for e in again.exclusions if e.constraint == "not_excluded")
    assert (excluded.excluded, excluded.only_reason) == (2, 2)


def test_rematch_with_only_past_therapists_left_offers_nobody() -> None:
    people, effects = team(0.70)
    rematch = intake(excluded_therapists=frozenset({"th-1"}))
    proposal = propose(rematch, people, effects, CONFIG, NOW)
    assert proposal.status == "none" and proposal.options == ()


def test_a_declined_therapist_is_excluded_from_the_next_proposal() -> None:
    people, effects = team(0.70, 0.60)
    declined = intake(declined_therapists=frozenset({"th-1"}))
    assert [o.therapist_id for o in propose(declined, people, effects, CONFIG, NOW).options] == [
        "th-2"
    ]


# --- the registry as columns -----------------------------------------------------------------


def test_reserving_the_last_place_makes_a_therapist_ineligible() -> None:
    roster = Roster.build([therapist("th-1", capacity=3, caseload=2), therapist("th-2")])
    assert propose(intake(), roster, [], CONFIG, NOW).eligible == 2
    after = roster.reserve("th-1")
    assert propose(intake(), after, [], CONFIG, NOW).eligible == 1
    assert propose(intake(), roster, [], CONFIG, NOW).eligible == 2  # the original is unchanged


def test_therapist_ids_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Roster.build([therapist("th-1"), therapist("th-1")])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), minutes=st.integers(0, 7 * 24 * 60))
def test_a_proposal_agrees_with_hard_constraints_and_score_for_every_therapist(
    seed: int, minutes: int
) -> None:
    intakes, people, records = random_network(seed, 6, 25)
    effects = EffectivenessTable(records)
    roster = Roster.build(people)
    now = NOW + timedelta(minutes=minutes)
    for client in intakes:
        proposal = propose(client, roster, effects, CONFIG, now, top=25)
        eligible = [t for t in people if not hard_constraints(client, t, CONFIG)]
        assert proposal.eligible == len(eligible)
        if eligible:
            assert {o.therapist_id for o in proposal.options} == {t.id for t in eligible}
            totals = [o.score.total for o in proposal.options]
            assert totals == sorted(totals, reverse=True)
            by_id = {t.id: t for t in people}
            for option in proposal.options:
                assert option.score == score(
                    client, by_id[option.therapist_id], effects, CONFIG, now
                )
        else:
            assert proposal.status in ("closest", "none")
            for option in proposal.options:
                assert list(option.violated) == hard_constraints(
                    client, roster.therapists[roster.index[option.therapist_id]], CONFIG
                )
        assert all(o.explanation for o in proposal.options)


def test_proposals_do_not_depend_on_the_order_therapists_are_given() -> None:
    intakes, people, records = random_network(3, 5, 30)
    shuffled = list(people)
    random.Random(1).shuffle(shuffled)
    for client in intakes:
        a = propose(client, people, records, CONFIG, NOW)
        b = propose(client, shuffled, records, CONFIG, NOW)
        assert a == b
