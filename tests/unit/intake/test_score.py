"""The transparent weighted score: each part, its weight, and the words that explain it."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pydantic import ValidationError

from services.intake.domain.matching import (
    DomainReference,
    EffectivenessTable,
    MatchingConfig,
    ProblemDomain,
    WeeklySlot,
    score,
)
from tests.unit.intake.builders import (
    NOW,
    intake,
    preferences,
    preferred,
    record,
    required,
    therapist,
    windows,
)

CONFIG = MatchingConfig()
REFERENCE = {"depression": DomainReference(improvement=0.45, deterioration=0.08)}
DEPRESSION = (ProblemDomain("depression", "moderate"),)


def table(
    *records: object, reference: dict[str, DomainReference] | None = None
) -> EffectivenessTable:
    return EffectivenessTable(records, REFERENCE if reference is None else reference)  # type: ignore[arg-type]


def points(
    code: str,
    client: object = None,
    who: object = None,
    effects: object = None,
    config: MatchingConfig = CONFIG,
    now: datetime = NOW,
) -> float:
    breakdown = score(
        client or intake(),  # type: ignore[arg-type]
        who or therapist(),  # type: ignore[arg-type]
        effects if effects is not None else table(),  # type: ignore[arg-type]
        config,
        now,
    )
    return breakdown.part(code).points


# --- problem-domain effectiveness -------------------------------------------------------------


def test_an_estimate_half_the_full_scale_above_the_reference_earns_half_credit() -> None:
    # weight 3 x moderate 1.5 x (0.525 - 0.45) / 0.15
    assert points("effectiveness", effects=table(record("th-1", "depression", 0.525))) == 2.25


def test_an_estimate_beyond_the_full_scale_is_capped() -> None:
    assert points("effectiveness", effects=table(record("th-1", "depression", 0.90))) == 4.5


def test_an_estimate_below_the_reference_costs_points() -> None:
    low = record("th-1", "depression", 0.375, classification="ineffective")
    assert points("effectiveness", effects=table(low)) == -2.25


def test_not_enough_data_counts_as_neutral_whatever_the_estimate() -> None:
    few = record("th-1", "depression", 0.90, n=6, classification="not_enough_data")
    assert points("effectiveness", effects=table(few)) == 0.0


def test_no_record_counts_as_neutral() -> None:
    assert points("effectiveness") == 0.0


def test_a_lower_deterioration_rate_than_the_reference_adds() -> None:
    better = record("th-1", "depression", 0.45, deterioration=0.005)
    # (0.08 - 0.005) / 0.15 = 0.5 -> 3 x 1.5 x 0.5
    assert points("effectiveness", effects=table(better)) == 2.25


def test_severity_weights_the_effectiveness_part() -> None:
    effects = table(record("th-1", "depression", 0.525))
    severe = intake(domains=(ProblemDomain("depression", "severe"),))
    mild = intake(domains=(ProblemDomain("depression", "mild"),))
    assert points("effectiveness", severe, effects=effects) == 3.0
    assert points("effectiveness", mild, effects=effects) == 1.5


def test_effectiveness_is_averaged_over_the_client_domains() -> None:
    two = intake(domains=(ProblemDomain("depression"), ProblemDomain("anxiety")))
    effects = table(record("th-1", "depression", 0.90))
    assert points("effectiveness", two, effects=effects) == 2.25


def test_the_reference_defaults_to_the_mean_of_the_network_estimates() -> None:
    effects = EffectivenessTable(
        [record("th-1", "depression", 0.55), record("th-2", "depression", 0.45)]
    )
    assert effects.reference["depression"].improvement == pytest.approx(0.50)
    # (0.55 - 0.50) / 0.15 = 1/3 -> 3 x 1.5 / 3
    assert points("effectiveness", effects=effects) == 1.5


def test_not_enough_data_does_not_count_as_zero_in_the_reference() -> None:
    # One closed case, none improved: the estimate reads 0 but says almost nothing. It weighs
    # as one case against forty, not as one therapist against one.
    effects = EffectivenessTable(
        [
            record("th-1", "depression", 0.55, n=40, classification="effective"),
            record("th-2", "depression", 0.0, n=1, classification="not_enough_data"),
        ]
    )
    assert effects.reference["depression"].improvement == pytest.approx(0.55 * 40 / 41)
    few = effects.get("th-2", "depression")
    assert few is not None and effects.signal(few) is None  # neutral, not 0 % improvement


def test_the_record_with_more_cases_wins_when_two_arrive() -> None:
    effects = table(
        record("th-1", "depression", 0.90, n=40), record("th-1", "depression", 0.45, n=20)
    )
    assert effects.get("th-1", "depression").n == 40  # type: ignore[union-attr]


def test_the_effectiveness_words_name_the_estimate_interval_reference_and_n() -> None:
    effects = table(record("th-1", "depression", 0.60, n=31, classification="effective"))
    detail = score(intake(), therapist(), effects, CONFIG, NOW).part("effectiveness").detail
    assert "depression (moderate): effective" in detail
    assert "60% [50%–70%] vs 45% reference" in detail and "n=31" in detail


def test_the_effectiveness_words_say_when_there_is_not_enough_data() -> None:
    few = record("th-1", "depression", 0.60, n=6, classification="not_enough_data")
    detail = score(intake(), therapist(), table(few), CONFIG, NOW).part("effectiveness").detail
    assert "not enough data (n=6), counted as neutral" in detail


# --- specialty fit ----------------------------------------------------------------------------


def test_a_listed_domain_earns_the_whole_specialty_weight() -> None:
    assert points("specialty") == 1.0


def test_an_unlisted_domain_earns_nothing() -> None:
    assert points("specialty", who=therapist(domains=frozenset({"grief"}))) == 0.0


def test_specialty_is_the_severity_weighted_share_of_the_domains() -> None:
    client = intake(
        domains=(ProblemDomain("depression", "severe"), ProblemDomain("anxiety", "mild"))
    )
    assert points("specialty", client) == pytest.approx(0.667)


# --- stated preferences -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "pref", "who", "weight"),
    [
        ("gender", preferred("woman"), therapist(gender="woman"), 1.0),
        ("language", preferred("es"), therapist(languages=frozenset({"en", "es"})), 1.0),
        ("culture_faith", preferred("jewish"), therapist(background=frozenset({"jewish"})), 1.0),
        ("modality", preferred("cbt", "act"), therapist(modalities=frozenset({"act"})), 0.75),
        ("site", preferred("site-a"), therapist(), 0.5),
        ("format", preferred("telehealth"), therapist(telehealth=True), 0.75),
        ("format", preferred("in_person"), therapist(), 0.75),
    ],
)
def test_a_met_preferred_preference_earns_its_weight(
    kind: str, pref: object, who: object, weight: float
) -> None:
    client = intake(languages=frozenset({"en", "es"}), preferences=preferences(**{kind: pref}))
    breakdown = score(client, who, table(), CONFIG, NOW)  # type: ignore[arg-type]
    assert breakdown.part(kind).points == weight
    assert breakdown.part(kind).detail.endswith(": met")


def test_an_unmet_preferred_preference_is_reported_with_no_points() -> None:
    client = intake(preferences=preferences(gender=preferred("man")))
    part = score(client, therapist(gender="woman"), table(), CONFIG, NOW).part("gender")
    assert part.points == 0.0 and part.detail == "Preferred gender man: not met"


def test_a_required_preference_is_a_constraint_not_a_score_part() -> None:
    client = intake(preferences=preferences(gender=required("woman")))
    breakdown = score(client, therapist(), table(), CONFIG, NOW)
    assert "gender" not in {p.code for p in breakdown.parts}


def test_unstated_preferences_have_no_part() -> None:
    codes = {p.code for p in score(intake(), therapist(), table(), CONFIG, NOW).parts}
    assert codes == {"effectiveness", "specialty", "experience", "wait", "caseload"}


def test_preferred_times_earn_points_when_a_session_fits_in_them() -> None:
    inside = intake(preferences=preferences(times=windows("preferred", (1, 9 * 60, 11 * 60))))
    outside = intake(preferences=preferences(times=windows("preferred", (5, 9 * 60, 11 * 60))))
    assert points("time", inside) == 0.75
    assert points("time", outside) == 0.0


# --- experience for complex cases --------------------------------------------------------------


def test_experience_does_not_count_for_a_case_that_is_not_complex() -> None:
    breakdown = score(intake(), therapist(years_experience=30), table(), CONFIG, NOW)
    assert breakdown.part("experience").points == 0.0
    assert breakdown.part("experience").detail == "Not a complex case: experience not weighted"


def test_experience_counts_fully_for_a_severe_risky_client_with_difficult_relationships() -> None:
    complex_case = intake(
        domains=(ProblemDomain("depression", "severe"),),
        risk=True,
        difficult_past_relationships=True,
    )
    assert points("experience", complex_case, therapist(years_experience=5)) == 0.75
    assert points("experience", complex_case, therapist(years_experience=10)) == 1.5
    assert points("experience", complex_case, therapist(years_experience=25)) == 1.5


def test_each_complexity_factor_is_a_third() -> None:
    for client in (
        intake(domains=(ProblemDomain("depression", "severe"),)),
        intake(risk=True),
        intake(difficult_past_relationships=True),
    ):
        assert points("experience", client, therapist(years_experience=10)) == 0.5


# --- earliest common session / wait ------------------------------------------------------------


def test_a_session_now_earns_the_whole_wait_weight() -> None:
    breakdown = score(intake(), therapist(), table(), CONFIG, NOW)
    assert breakdown.earliest_session == datetime(2026, 3, 2, 9, 0)
    assert breakdown.part("wait").points == 1.0


def test_when_the_rest_of_today_is_too_short_the_next_day_counts() -> None:
    # Monday 11:30: only 30 minutes left of the 09:00-12:00 slot; next session Tuesday 09:00.
    late = datetime(2026, 3, 2, 11, 30)
    breakdown = score(intake(), therapist(), table(), CONFIG, late)
    assert breakdown.earliest_session == datetime(2026, 3, 3, 9, 0)
    assert breakdown.part("wait").points == pytest.approx(1 - 21.5 / (28 * 24), abs=0.0005)


def test_a_later_opening_date_delays_the_first_session() -> None:
    opening = therapist(accepts_new_clients_from=date(2026, 3, 16))
    breakdown = score(intake(), opening, table(), CONFIG, NOW)
    assert breakdown.earliest_session == datetime(2026, 3, 16, 9, 0)
    assert breakdown.part("wait").points == 0.5


def test_no_wait_credit_at_or_beyond_the_horizon() -> None:
    opening = therapist(accepts_new_clients_from=date(2026, 4, 30))
    assert points("wait", who=opening) == 0.0


def test_the_earliest_session_falls_in_the_client_windows() -> None:
    client = intake(preferences=preferences(times=windows("required", (3, 10 * 60, 12 * 60))))
    breakdown = score(client, therapist(), table(), CONFIG, NOW)
    assert breakdown.earliest_session == datetime(2026, 3, 5, 10, 0)
    assert "Thu 5 Mar 10:00" in breakdown.part("wait").detail


def test_the_earliest_session_wraps_into_next_week() -> None:
    friday_evening = datetime(2026, 3, 6, 19, 0)
    breakdown = score(intake(), therapist(), table(), CONFIG, friday_evening)
    assert breakdown.earliest_session == datetime(2026, 3, 9, 9, 0)


# --- caseload balance -------------------------------------------------------------------------


def test_caseload_balance_is_the_free_share_of_capacity() -> None:
    assert points("caseload", who=therapist(capacity=10, caseload=2)) == 0.4
    assert points("caseload", who=therapist(capacity=10, caseload=9)) == 0.05
    assert points("caseload", who=therapist(capacity=10, caseload=10)) == 0.0


# --- totals, weights and site overrides --------------------------------------------------------


def test_the_total_is_exactly_the_sum_of_the_rounded_parts() -> None:
    client = intake(
        domains=(ProblemDomain("depression", "severe"), ProblemDomain("anxiety", "mild")),
        risk=True,
        preferences=preferences(gender=preferred("woman"), modality=preferred("act")),
    )
    effects = table(record("th-1", "depression", 0.51234))
    breakdown = score(
        client, therapist(years_experience=7.3), effects, CONFIG, datetime(2026, 3, 2, 10, 17)
    )
    millis = [round(p.points * 1000) for p in breakdown.parts]
    assert all(
        abs(p.points * 1000 - m) < 1e-6 for p, m in zip(breakdown.parts, millis, strict=True)
    )
    assert round(breakdown.total * 1000) == sum(millis)


def test_every_part_says_why() -> None:
    client = intake(
        preferences=preferences(gender=preferred("man"), times=windows("preferred", (0, 540, 700)))
    )
    for part in score(client, therapist(), table(), CONFIG, NOW).parts:
        assert part.detail, part.code


def test_doubling_a_weight_doubles_its_part_and_zero_removes_it() -> None:
    double = MatchingConfig.for_site({"weights": {"specialty": 2.0}})
    zero = MatchingConfig.for_site({"weights": {"specialty": 0.0}})
    assert points("specialty", config=double) == 2.0
    assert points("specialty", config=zero) == 0.0
    assert score(intake(), therapist(), table(), double, NOW).part("specialty").weight == 2.0


def test_a_site_override_keeps_every_other_default() -> None:
    site = MatchingConfig.for_site({"weights": {"effectiveness": 6.0}, "top": 5})
    assert site.weights.effectiveness == 6.0 and site.top == 5
    assert site.weights.specialty == CONFIG.weights.specialty
    assert site.severity_weights == CONFIG.severity_weights


def test_a_site_override_can_start_from_a_network_config() -> None:
    network = MatchingConfig.for_site({"weights": {"wait": 3.0}})
    site = MatchingConfig.for_site({"weights": {"caseload": 0.0}}, base=network)
    assert site.weights.wait == 3.0 and site.weights.caseload == 0.0


def test_site_weights_change_the_effectiveness_part() -> None:
    effects = table(record("th-1", "depression", 0.525))
    site = MatchingConfig.for_site(
        {"weights": {"effectiveness": 6.0}, "severity_weights": {"moderate": 1.0}}
    )
    assert points("effectiveness", effects=effects, config=site) == 3.0


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"weights": {"effectiveness": -1}}, ("weights", "effectiveness")),
        ({"weights": {"charm": 1}}, ("weights", "charm")),
        ({"severity_weights": {"severe": "very"}}, ("severity_weights", "severe")),
        ({"session_minutes": 0}, ("session_minutes",)),
        ({"top": 0}, ("top",)),
        ({"effectiveness_full_scale": 0}, ("effectiveness_full_scale",)),
        ({"relaxation_costs": {"language": 0}}, ("relaxation_costs", "language")),
        ({"domain_scopes": {"sadness": "adults"}}, ("domain_scopes",)),
        ({"colour": "blue"}, ("colour",)),
    ],
)
def test_a_bad_site_override_names_the_field(
    overrides: dict[str, object], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        MatchingConfig.for_site(overrides)
    assert caught.value.errors()[0]["loc"] == location


def test_all_weights_zero_is_rejected() -> None:
    zero = {k: 0 for k in CONFIG.weights.model_dump()}
    with pytest.raises(ValidationError, match="at least one weight"):
        MatchingConfig.for_site({"weights": zero})


def test_a_slot_off_the_five_minute_grid_is_rounded_inward() -> None:
    # 09:03-09:57 holds 09:05-09:55: exactly one 50-minute session.
    odd = therapist(availability=(WeeklySlot(0, 9 * 60 + 3, 9 * 60 + 57),))
    assert score(intake(), odd, table(), CONFIG, NOW).earliest_session == datetime(2026, 3, 2, 9, 5)
