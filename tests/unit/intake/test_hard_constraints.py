"""Hard constraints (docs/clinical-rules.md, Matching): each with a case that holds and one
that excludes, at the boundary where there is one."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.intake.domain.matching import (
    COMPETENCE_SCOPES,
    CONSTRAINTS,
    LANGUAGES,
    MODALITIES,
    PROBLEM_DOMAINS,
    MatchingConfig,
    ProblemDomain,
    WeeklySlot,
    constraint_checks,
    hard_constraints,
    intake_problems,
    therapist_problems,
)
from tests.unit.intake.builders import (
    CLIENT,
    intake,
    preferences,
    preferred,
    required,
    therapist,
    windows,
)


def test_the_default_pair_meets_every_hard_constraint() -> None:
    assert hard_constraints(intake(), therapist()) == []


def test_every_applied_constraint_is_reported_with_words() -> None:
    checks = constraint_checks(intake(), therapist())
    assert [c.code for c in checks] == [
        c for c in CONSTRAINTS if c not in ("gender", "culture_faith", "modality")
    ]
    assert all(c.held and c.detail for c in checks)


# --- active ------------------------------------------------------------------------------------


def test_an_inactive_therapist_is_excluded() -> None:
    assert hard_constraints(intake(), therapist(active=False)) == ["active"]


# --- conflicts and dual relationships -------------------------------------------------------


def test_a_therapist_with_a_recorded_conflict_with_this_client_is_excluded() -> None:
    assert hard_constraints(intake(), therapist(exclusions=frozenset({CLIENT}))) == ["no_conflict"]


def test_a_conflict_with_another_client_does_not_exclude() -> None:
    other = "p1_" + "b" * 32
    assert hard_constraints(intake(), therapist(exclusions=frozenset({other}))) == []


# --- exclusions by the client (declined, past therapists on rematch) --------------------------


def test_a_therapist_the_client_declined_is_excluded() -> None:
    assert hard_constraints(intake(excluded_therapists=frozenset({"th-1"})), therapist()) == [
        "not_excluded"
    ]


def test_declining_another_therapist_does_not_exclude_this_one() -> None:
    assert hard_constraints(intake(excluded_therapists=frozenset({"th-9"})), therapist()) == []


# --- capacity left ----------------------------------------------------------------------------


def test_one_place_left_is_enough() -> None:
    assert hard_constraints(intake(), therapist(capacity=10, caseload=9)) == []


def test_a_full_caseload_excludes() -> None:
    assert hard_constraints(intake(), therapist(capacity=10, caseload=10)) == ["capacity"]


def test_a_caseload_over_capacity_excludes() -> None:
    assert hard_constraints(intake(), therapist(capacity=10, caseload=12)) == ["capacity"]


def test_zero_capacity_excludes() -> None:
    assert hard_constraints(intake(), therapist(capacity=0, caseload=0)) == ["capacity"]


# --- language ---------------------------------------------------------------------------------


def test_a_shared_language_holds() -> None:
    assert (
        hard_constraints(
            intake(languages=frozenset({"es", "en"})), therapist(languages=frozenset({"es"}))
        )
        == []
    )


def test_no_shared_language_excludes() -> None:
    assert hard_constraints(intake(), therapist(languages=frozenset({"es"}))) == ["language"]


def test_a_required_language_narrows_the_client_languages() -> None:
    client = intake(
        languages=frozenset({"en", "es"}), preferences=preferences(language=required("es"))
    )
    assert hard_constraints(client, therapist(languages=frozenset({"en"}))) == ["language"]
    assert hard_constraints(client, therapist(languages=frozenset({"es"}))) == []


def test_a_preferred_language_does_not_exclude() -> None:
    client = intake(
        languages=frozenset({"en", "es"}), preferences=preferences(language=preferred("es"))
    )
    assert hard_constraints(client, therapist(languages=frozenset({"en"}))) == []


# --- site or telehealth feasibility -----------------------------------------------------------


def test_in_person_at_the_client_site_holds() -> None:
    assert hard_constraints(intake(site="site-a"), therapist(sites=frozenset({"site-a"}))) == []


def test_another_site_without_telehealth_excludes() -> None:
    assert hard_constraints(intake(site="site-a"), therapist(sites=frozenset({"site-b"}))) == [
        "location"
    ]


def test_telehealth_from_another_site_holds_when_the_client_accepts_either() -> None:
    assert (
        hard_constraints(
            intake(site="site-a"), therapist(sites=frozenset({"site-b"}), telehealth=True)
        )
        == []
    )


def test_telehealth_from_another_site_excludes_when_in_person_is_required() -> None:
    client = intake(site="site-a", preferences=preferences(format=required("in_person")))
    assert hard_constraints(client, therapist(sites=frozenset({"site-b"}), telehealth=True)) == [
        "location"
    ]


def test_required_telehealth_excludes_an_in_person_only_therapist() -> None:
    client = intake(preferences=preferences(format=required("telehealth")))
    assert hard_constraints(client, therapist(telehealth=False)) == ["location"]
    assert hard_constraints(client, therapist(telehealth=True)) == []


def test_a_required_site_replaces_the_intake_site() -> None:
    client = intake(
        site="site-a",
        preferences=preferences(site=required("site-b"), format=required("in_person")),
    )
    assert hard_constraints(client, therapist(sites=frozenset({"site-a"}))) == ["location"]
    assert hard_constraints(client, therapist(sites=frozenset({"site-b"}))) == []


def test_a_preferred_site_keeps_the_intake_site_possible() -> None:
    client = intake(site="site-a", preferences=preferences(site=preferred("site-b")))
    assert hard_constraints(client, therapist(sites=frozenset({"site-a"}))) == []


def test_a_site_can_keep_telehealth_within_its_own_walls() -> None:
    config = MatchingConfig.for_site({"telehealth_across_sites": False})
    remote = therapist(sites=frozenset({"site-b"}), telehealth=True)
    assert hard_constraints(intake(site="site-a"), remote, config) == ["location"]
    local = therapist(sites=frozenset({"site-a"}), telehealth=True)
    client = intake(site="site-a", preferences=preferences(format=required("telehealth")))
    assert hard_constraints(client, local, config) == []


# --- availability -----------------------------------------------------------------------------


def test_no_availability_slots_exclude() -> None:
    assert hard_constraints(intake(), therapist(availability=())) == ["availability"]


def test_a_slot_exactly_one_session_long_holds() -> None:
    exact = therapist(availability=(WeeklySlot(0, 9 * 60, 9 * 60 + 50),))
    assert hard_constraints(intake(), exact) == []


def test_a_slot_five_minutes_shorter_than_a_session_excludes() -> None:
    short = therapist(availability=(WeeklySlot(0, 9 * 60, 9 * 60 + 45),))
    assert hard_constraints(intake(), short) == ["availability"]


def test_a_longer_session_length_is_a_site_setting() -> None:
    config = MatchingConfig.for_site({"session_minutes": 60})
    exact = therapist(availability=(WeeklySlot(0, 9 * 60, 9 * 60 + 50),))
    assert hard_constraints(intake(), exact, config) == ["availability"]


def test_required_windows_overlapping_by_one_session_hold() -> None:
    # Therapist Monday 09:00-12:00; client Monday 11:10-14:00: exactly 50 minutes in common.
    client = intake(preferences=preferences(times=windows("required", (0, 11 * 60 + 10, 14 * 60))))
    assert hard_constraints(client, therapist()) == []


def test_required_windows_overlapping_by_less_than_a_session_exclude() -> None:
    client = intake(preferences=preferences(times=windows("required", (0, 11 * 60 + 15, 14 * 60))))
    assert hard_constraints(client, therapist()) == ["availability"]


def test_required_windows_on_other_days_exclude() -> None:
    client = intake(preferences=preferences(times=windows("required", (5, 9 * 60, 12 * 60))))
    assert hard_constraints(client, therapist()) == ["availability"]


def test_preferred_windows_that_do_not_overlap_do_not_exclude() -> None:
    client = intake(preferences=preferences(times=windows("preferred", (5, 9 * 60, 12 * 60))))
    assert hard_constraints(client, therapist()) == []


def test_a_later_opening_date_does_not_exclude() -> None:
    assert hard_constraints(intake(), therapist(accepts_new_clients_from=date(2026, 5, 1))) == []


# --- competence scope -------------------------------------------------------------------------


def test_a_couple_needs_the_couples_scope() -> None:
    couple = intake(unit="couple")
    assert hard_constraints(couple, therapist()) == ["competence"]
    assert hard_constraints(couple, therapist(scopes=frozenset({"adults", "couples"}))) == []


def test_a_family_needs_the_family_scope() -> None:
    family = intake(unit="family")
    assert hard_constraints(family, therapist()) == ["competence"]
    assert hard_constraints(family, therapist(scopes=frozenset({"adults", "family"}))) == []


def test_a_child_or_adolescent_needs_the_children_and_adolescents_scope() -> None:
    for age in ("child", "adolescent"):
        young = intake(age_group=age)
        assert hard_constraints(young, therapist()) == ["competence"]
        scope = frozenset({"children_adolescents"})
        assert hard_constraints(young, therapist(scopes=scope)) == []


def test_an_eating_disorder_needs_the_eating_disorders_scope() -> None:
    client = intake(domains=(ProblemDomain("eating", "moderate"),))
    assert hard_constraints(client, therapist()) == ["competence"]
    scoped = therapist(scopes=frozenset({"adults", "eating_disorders"}))
    assert hard_constraints(client, scoped) == []


def test_a_site_can_drop_a_domain_scope_requirement() -> None:
    config = MatchingConfig.for_site({"domain_scopes": {"psychosis": "psychosis"}})
    client = intake(domains=(ProblemDomain("eating", "moderate"),))
    assert hard_constraints(client, therapist(), config) == []


def test_missing_scopes_are_named() -> None:
    checks = constraint_checks(intake(unit="couple"), therapist())
    competence = next(c for c in checks if c.code == "competence")
    assert not competence.held and "couples" in competence.detail


# --- required preferences --------------------------------------------------------------------


def test_a_required_gender_excludes_another_gender() -> None:
    client = intake(preferences=preferences(gender=required("man")))
    assert hard_constraints(client, therapist(gender="woman")) == ["gender"]
    assert hard_constraints(client, therapist(gender="man")) == []


def test_a_required_gender_excludes_a_therapist_who_declared_none() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    assert hard_constraints(client, therapist(gender=None)) == ["gender"]


def test_a_preferred_gender_never_excludes() -> None:
    client = intake(preferences=preferences(gender=preferred("man")))
    assert hard_constraints(client, therapist(gender="woman")) == []


def test_a_required_culture_or_faith_needs_a_self_declared_match() -> None:
    client = intake(preferences=preferences(culture_faith=required("muslim")))
    assert hard_constraints(client, therapist()) == ["culture_faith"]
    assert hard_constraints(client, therapist(background=frozenset({"muslim"}))) == []


def test_a_required_modality_needs_one_of_the_modalities() -> None:
    client = intake(preferences=preferences(modality=required("emdr", "cpt")))
    assert hard_constraints(client, therapist()) == ["modality"]
    assert hard_constraints(client, therapist(modalities=frozenset({"cpt"}))) == []


def test_several_violations_are_all_reported_in_order() -> None:
    client = intake(unit="couple", preferences=preferences(gender=required("man")))
    far = therapist(languages=frozenset({"es"}), caseload=10, sites=frozenset({"site-b"}))
    assert hard_constraints(client, far) == [
        "capacity",
        "language",
        "location",
        "competence",
        "gender",
    ]


# --- input problems for the API (422) ---------------------------------------------------------


def test_the_vocabularies_are_exposed_as_sets() -> None:
    assert "depression" in PROBLEM_DOMAINS and "cbt" in MODALITIES
    assert "couples" in COMPETENCE_SCOPES and {"en", "es", "ase"} <= LANGUAGES


def test_a_valid_therapist_and_intake_have_no_problems() -> None:
    assert therapist_problems(therapist()) == []
    assert intake_problems(intake()) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"languages": frozenset({"xx"})}, "languages"),
        ({"modalities": frozenset({"astrology"})}, "modalities"),
        ({"scopes": frozenset({"everything"})}, "scopes"),
        ({"domains": frozenset({"sadness"})}, "domains"),
        ({"gender": "other"}, "gender"),
        ({"capacity": -1}, "capacity"),
        ({"caseload": -1}, "caseload"),
        ({"years_experience": -2.0}, "years_experience"),
        ({"availability": (WeeklySlot(0, 600, 540),)}, "availability.0.end_minute"),
        ({"availability": (WeeklySlot(7, 540, 600),)}, "availability.0.day"),
        ({"availability": (WeeklySlot(0, 540, 1441),)}, "availability.0.end_minute"),
        ({"availability": (WeeklySlot(0, 1440, 1441),)}, "availability.0.start_minute"),
        ({"sites": frozenset()}, "sites"),
    ],
)
def test_therapist_problems_name_the_field(changes: dict[str, Any], field: str) -> None:
    problems = therapist_problems(therapist(**changes))
    assert [p.field for p in problems] == [field]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"domains": (ProblemDomain("sadness"),)}, "domains"),
        ({"domains": ()}, "domains"),
        ({"domains": (ProblemDomain("depression"), ProblemDomain("depression"))}, "domains"),
        ({"domains": (ProblemDomain("depression", "extreme"),)}, "domains.0.severity"),  # type: ignore[arg-type]
        ({"languages": frozenset()}, "languages"),
        ({"unit": "group"}, "unit"),
        ({"age_group": "toddler"}, "age_group"),
        ({"preferences": preferences(gender=required("robot"))}, "preferences.gender.codes"),
        (
            {"preferences": preferences(format=required("carrier_pigeon"))},
            "preferences.format.codes",
        ),
        ({"preferences": preferences(modality=required())}, "preferences.modality.codes"),
        (
            {"preferences": preferences(times=windows("required", (0, 600, 600)))},
            "preferences.times.windows.0.end_minute",
        ),
        ({"preferences": preferences(times=windows("required"))}, "preferences.times.windows"),
    ],
)
def test_intake_problems_name_the_field(changes: dict[str, Any], field: str) -> None:
    problems = intake_problems(intake(**changes))
    assert [p.field for p in problems] == [field]
