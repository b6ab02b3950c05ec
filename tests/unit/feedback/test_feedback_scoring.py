"""Questionnaire scoring (services/feedback/domain.py) with the shipped instrument definitions.

Totals are hand-computed; thresholds are checked at, just below and just above each edge
(docs/clinical-rules.md, Instruments). Scores are exact decimals: 9.2 + 9.2 + 9.2 + 9.4 is 37.0, not
36.99999….
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.feedback.domain import (
    AnswerError,
    Scored,
    check_answers,
    in_concern_or_clinical_range,
    score,
)
from shared.instruments import SHIPPED, Instrument, load_instruments

INSTRUMENTS = load_instruments(SHIPPED)
SRS = INSTRUMENTS["srs"]
ORS = INSTRUMENTS["ors"]
WAI_SR = INSTRUMENTS["wai-sr"]
WAI_SR_T = INSTRUMENTS["wai-sr-t"]
PHQ_9 = INSTRUMENTS["phq-9"]
GAD_7 = INSTRUMENTS["gad-7"]

# WAI-SR answers 1..12, chosen so each subscale has a different total.
WAI_ANSWERS = {"1": 5, "2": 4, "3": 3, "4": 2, "5": 1, "6": 5}
WAI_ANSWERS |= {"7": 4, "8": 3, "9": 2, "10": 1, "11": 5, "12": 4}


def checked_score(instrument: Instrument, raw: dict[str, object], role: str = "client") -> Scored:
    assert check_answers(instrument, role, raw) == []
    return score(instrument, raw)


def summing_to(instrument: Instrument, total: int) -> dict[str, object]:
    """Integer answers adding up to ``total``: earlier items filled first (so PHQ-9's risk
    item 9 stays 0 unless the total needs it)."""
    answers: dict[str, object] = {}
    left = total
    for item in instrument.items:
        value = min(int(instrument.item_max), left)
        answers[item] = value
        left -= value
    assert left == 0, f"{instrument.id} cannot total {total}"
    return answers


def srs(relationship: str, goals: str, approach: str, overall: str) -> dict[str, object]:
    values = (relationship, goals, approach, overall)
    return dict(zip(SRS.items, [float(v) for v in values], strict=True))


def ors(*values: str) -> dict[str, object]:
    return dict(zip(ORS.items, [float(v) for v in values], strict=True))


def test_every_instrument_named_in_the_domain_reference_is_shipped() -> None:
    assert sorted(INSTRUMENTS) == [
        "core-10",
        "gad-7",
        "goals",
        "ors",
        "phq-9",
        "srs",
        "support",
        "wai-sr",
        "wai-sr-t",
    ]


# -- SRS -------------------------------------------------------------------------------------


def test_srs_total_is_the_exact_decimal_sum_of_its_items() -> None:
    scored = checked_score(SRS, srs("9.2", "9.2", "9.2", "9.4"))

    assert scored.total == Decimal("37.0")
    assert str(scored.total) == "37.0"
    assert scored.items == {
        "relationship": Decimal("9.2"),
        "goals": Decimal("9.2"),
        "approach": Decimal("9.2"),
        "overall": Decimal("9.4"),
    }


def test_srs_one_decimal_sums_stay_exact_where_floats_would_not() -> None:
    raw = srs("0.1", "0.2", "0.3", "0.0")
    assert sum(float(v) for v in raw.values()) != 0.6  # type: ignore[arg-type]

    assert checked_score(SRS, raw).total == Decimal("0.6")


def test_srs_has_no_subscales_band_or_risk_items() -> None:
    scored = checked_score(SRS, srs("10", "10", "10", "10"))

    assert (scored.total, scored.subscales, scored.band, scored.risk_items) == (
        Decimal("40"),
        {},
        None,
        {},
    )


def test_srs_total_of_36_with_every_item_at_least_9_is_not_concern() -> None:
    scored = checked_score(SRS, srs("9.0", "9.0", "9.0", "9.0"))

    assert scored.total == Decimal("36.0")
    assert scored.in_concern_or_clinical_range is False


def test_srs_total_of_35_9_is_concern() -> None:
    scored = checked_score(SRS, srs("9.0", "9.0", "9.0", "8.9"))

    assert scored.total == Decimal("35.9")
    assert scored.in_concern_or_clinical_range is True


def test_srs_concern_fires_on_a_total_of_35_9_by_the_total_rule_alone() -> None:
    items = {item: Decimal("9.0") for item in SRS.items}

    assert in_concern_or_clinical_range(SRS, Decimal("35.9"), items) is True
    assert in_concern_or_clinical_range(SRS, Decimal("36.0"), items) is False


def test_srs_any_item_at_8_9_is_concern_even_with_a_high_total() -> None:
    scored = checked_score(SRS, srs("10.0", "10.0", "10.0", "8.9"))

    assert scored.total == Decimal("38.9")
    assert scored.in_concern_or_clinical_range is True


def test_srs_lowest_item_at_9_0_with_a_high_total_is_not_concern() -> None:
    scored = checked_score(SRS, srs("10.0", "9.0", "10.0", "10.0"))

    assert scored.in_concern_or_clinical_range is False


# -- ORS -------------------------------------------------------------------------------------


def test_ors_total_of_24_9_is_in_the_clinical_range() -> None:
    scored = checked_score(ORS, ors("6.1", "6.2", "6.3", "6.3"))

    assert scored.total == Decimal("24.9")
    assert scored.in_concern_or_clinical_range is True


def test_ors_total_of_25_0_is_not_in_the_clinical_range() -> None:
    scored = checked_score(ORS, ors("6.2", "6.2", "6.3", "6.3"))

    assert scored.total == Decimal("25.0")
    assert scored.in_concern_or_clinical_range is False


def test_ors_total_of_25_1_is_not_in_the_clinical_range() -> None:
    assert checked_score(ORS, ors("6.2", "6.3", "6.3", "6.3")).in_concern_or_clinical_range is False


def test_ors_may_be_answered_by_a_partner() -> None:
    assert check_answers(ORS, "partner", ors("5", "5", "5", "5")) == []


# -- WAI-SR (client) and WAI-SR-T (therapist) --------------------------------------------------


@pytest.mark.parametrize(("instrument", "role"), [(WAI_SR, "client"), (WAI_SR_T, "therapist")])
def test_wai_sr_total_is_the_sum_of_its_twelve_items(instrument: Instrument, role: str) -> None:
    assert checked_score(instrument, dict(WAI_ANSWERS), role).total == Decimal(39)


@pytest.mark.parametrize(("instrument", "role"), [(WAI_SR, "client"), (WAI_SR_T, "therapist")])
def test_wai_sr_subscales_are_task_bond_and_goal(instrument: Instrument, role: str) -> None:
    scored = checked_score(instrument, dict(WAI_ANSWERS), role)

    # task = 1, 2, 10, 12: 5+4+1+4; bond = 3, 5, 7, 9: 3+1+4+2; goal = 4, 6, 8, 11: 2+5+3+5
    assert scored.subscales == {"task": Decimal(14), "bond": Decimal(10), "goal": Decimal(15)}


@pytest.mark.parametrize(("instrument", "role"), [(WAI_SR, "client"), (WAI_SR_T, "therapist")])
def test_wai_sr_subscales_range_from_4_to_20(instrument: Instrument, role: str) -> None:
    lowest = checked_score(instrument, dict.fromkeys(instrument.items, 1), role)
    highest = checked_score(instrument, dict.fromkeys(instrument.items, 5), role)

    assert (lowest.total, set(lowest.subscales.values())) == (Decimal(12), {Decimal(4)})
    assert (highest.total, set(highest.subscales.values())) == (Decimal(60), {Decimal(20)})


@pytest.mark.parametrize(("instrument", "role"), [(WAI_SR, "client"), (WAI_SR_T, "therapist")])
@pytest.mark.parametrize(("total", "concern"), [(35, True), (36, False), (37, False)])
def test_wai_sr_concern_is_a_total_below_36(
    instrument: Instrument, role: str, total: int, concern: bool
) -> None:
    answers = dict.fromkeys(instrument.items, 3)  # 36
    answers["1"] = 3 + total - 36

    scored = checked_score(instrument, answers, role)

    assert scored.total == Decimal(total)
    assert scored.in_concern_or_clinical_range is concern


# -- PHQ-9 -------------------------------------------------------------------------------------


def test_phq9_total_is_the_sum_of_its_nine_items() -> None:
    answers = dict(zip(PHQ_9.items, [1, 2, 0, 3, 1, 0, 2, 1, 0], strict=True))

    scored = checked_score(PHQ_9, answers)

    assert (scored.total, scored.band, scored.subscales) == (Decimal(10), "moderate", {})


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately_severe"),
        (19, "moderately_severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_band_at_each_edge(total: int, band: str) -> None:
    scored = checked_score(PHQ_9, summing_to(PHQ_9, total))

    assert scored.total == Decimal(total)
    assert scored.band == band


@pytest.mark.parametrize(("total", "caseness"), [(9, False), (10, True), (11, True)])
def test_phq9_caseness_is_a_total_of_10_or_more(total: int, caseness: bool) -> None:
    assert checked_score(PHQ_9, summing_to(PHQ_9, total)).in_concern_or_clinical_range is caseness


def test_phq9_item_9_at_1_is_a_risk_item() -> None:
    answers = summing_to(PHQ_9, 0) | {"9": 1}

    assert checked_score(PHQ_9, answers).risk_items == {"9": Decimal(1)}


def test_phq9_item_9_at_3_is_a_risk_item_with_its_value() -> None:
    answers = summing_to(PHQ_9, 0) | {"9": 3}

    assert checked_score(PHQ_9, answers).risk_items == {"9": Decimal(3)}


def test_phq9_item_9_at_0_is_not_a_risk_item_even_with_a_severe_total() -> None:
    answers = summing_to(PHQ_9, 24)
    assert answers["9"] == 0

    assert checked_score(PHQ_9, answers).risk_items == {}


# -- GAD-7 -------------------------------------------------------------------------------------


def test_gad7_total_is_the_sum_of_its_seven_items() -> None:
    answers = dict(zip(GAD_7.items, [3, 0, 2, 1, 0, 1, 0], strict=True))

    scored = checked_score(GAD_7, answers)

    assert (scored.total, scored.band, scored.risk_items) == (Decimal(7), "mild", {})


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_band_at_each_edge(total: int, band: str) -> None:
    scored = checked_score(GAD_7, summing_to(GAD_7, total))

    assert scored.total == Decimal(total)
    assert scored.band == band


@pytest.mark.parametrize(("total", "caseness"), [(7, False), (8, True), (9, True)])
def test_gad7_caseness_is_a_total_of_8_or_more(total: int, caseness: bool) -> None:
    assert checked_score(GAD_7, summing_to(GAD_7, total)).in_concern_or_clinical_range is caseness


def test_gad7_has_no_risk_items() -> None:
    assert checked_score(GAD_7, summing_to(GAD_7, 21)).risk_items == {}


# -- check_answers -----------------------------------------------------------------------------


def only_error(instrument: Instrument, raw: dict[str, object], role: str = "client") -> AnswerError:
    errors = check_answers(instrument, role, raw)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_missing_item_is_named() -> None:
    raw = srs("9", "9", "9", "9")
    del raw["approach"]

    error = only_error(SRS, raw)

    assert (error.field, error.rule) == ("items.approach", "missing")


def test_every_missing_item_is_named() -> None:
    errors = check_answers(PHQ_9, "client", {})

    assert [e.field for e in errors] == [f"items.{i}" for i in range(1, 10)]
    assert {e.rule for e in errors} == {"missing"}


def test_an_unknown_item_is_named() -> None:
    error = only_error(SRS, srs("9", "9", "9", "9") | {"mood": 5})

    assert (error.field, error.rule) == ("items.mood", "unknown_item")
    assert "'mood'" in error.message


@pytest.mark.parametrize(
    ("instrument", "item", "value"),
    [
        (SRS, "goals", 10.1),
        (SRS, "goals", -0.1),
        (SRS, "goals", -1),
        (PHQ_9, "3", 4),
        (PHQ_9, "3", -1),
        (WAI_SR, "7", 0),
        (WAI_SR, "7", 6),
    ],
)
def test_a_value_out_of_range_is_named_with_the_range(
    instrument: Instrument, item: str, value: object
) -> None:
    raw = {i: instrument.item_min for i in instrument.items} | {item: value}

    error = only_error(instrument, raw)

    assert (error.field, error.rule) == (f"items.{item}", "out_of_range")
    assert f"from {instrument.item_min} to {instrument.item_max}" in error.message


@pytest.mark.parametrize(
    ("instrument", "value"), [(SRS, 0.0), (SRS, 10.0), (PHQ_9, 0), (PHQ_9, 3), (WAI_SR, 1)]
)
def test_values_at_the_ends_of_the_range_are_accepted(
    instrument: Instrument, value: object
) -> None:
    assert check_answers(instrument, "client", dict.fromkeys(instrument.items, value)) == []


@pytest.mark.parametrize(
    ("instrument", "item", "value"),
    [(SRS, "overall", 9.25), (SRS, "overall", 9.01), (PHQ_9, "1", 1.5), (WAI_SR, "2", 2.5)],
)
def test_a_value_between_steps_is_named_with_the_step(
    instrument: Instrument, item: str, value: object
) -> None:
    raw = {i: instrument.item_min for i in instrument.items} | {item: value}

    error = only_error(instrument, raw)

    assert (error.field, error.rule) == (f"items.{item}", "off_step")
    assert f"steps of {instrument.step}" in error.message


@pytest.mark.parametrize("value", ["9.3", 9.3, 93 / 10])
def test_one_decimal_values_are_on_step_however_they_are_written(value: object) -> None:
    assert check_answers(SRS, "client", srs("9", "9", "9", "9") | {"overall": value}) == []


@pytest.mark.parametrize(
    "value",
    ["x", True, False, None, [], {}, float("nan"), float("inf"), "NaN"],
    ids=["text", "true", "false", "none", "list", "dict", "nan", "inf", "nan-text"],
)
def test_a_value_that_is_not_a_number_is_named(value: object) -> None:
    raw = dict.fromkeys(PHQ_9.items, 0) | {"5": value}

    error = only_error(PHQ_9, raw)

    assert (error.field, error.rule) == ("items.5", "not_a_number")


def test_a_therapist_may_not_answer_the_srs() -> None:
    error = only_error(SRS, srs("9", "9", "9", "9"), role="therapist")

    assert (error.field, error.rule) == ("respondent_role", "role_not_allowed")
    assert "not therapist" in error.message


def test_a_client_may_not_answer_the_therapists_wai_sr_t() -> None:
    error = only_error(WAI_SR_T, dict(WAI_ANSWERS), role="client")

    assert (error.field, error.rule) == ("respondent_role", "role_not_allowed")
    assert "therapist" in error.message


def test_all_problems_are_reported_together() -> None:
    raw: dict[str, object] = {"relationship": 11, "goals": "x", "mood": 1}

    errors = check_answers(SRS, "therapist", raw)

    assert sorted((e.field, e.rule) for e in errors) == [
        ("items.approach", "missing"),
        ("items.goals", "not_a_number"),
        ("items.mood", "unknown_item"),
        ("items.overall", "missing"),
        ("items.relationship", "out_of_range"),
        ("respondent_role", "role_not_allowed"),
    ]


# -- instrument definitions --------------------------------------------------------------------


def definition(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SHIPPED / f"{name}.json").read_text())
    data.update(changes)
    return data


def test_a_subscale_naming_an_unknown_item_is_refused() -> None:
    subscales = {"task": ["1", "2", "10", "13"]}

    with pytest.raises(ValidationError, match="subscale task names unknown items"):
        Instrument.model_validate(definition("wai-sr", subscales=subscales))


def test_a_risk_item_naming_an_unknown_item_is_refused() -> None:
    with pytest.raises(ValidationError, match="risk_items names unknown items"):
        Instrument.model_validate(definition("phq-9", risk_items=["10"]))


def test_wording_on_an_instrument_that_is_not_free_to_use_is_refused() -> None:
    wording = {"relationship": "I felt heard, understood and respected."}

    with pytest.raises(ValidationError, match="wording may only be shipped"):
        Instrument.model_validate(definition("srs", wording=wording))


def test_wording_on_a_free_instrument_is_accepted() -> None:
    assert Instrument.model_validate(definition("phq-9")).wording["9"].startswith("Thoughts")


def test_an_alliance_instrument_without_a_concern_condition_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs a concern condition"):
        Instrument.model_validate(definition("srs", concern=None))


def test_an_instrument_definition_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValidationError):
        Instrument.model_validate(definition("gad-7", cutoff=8))


def write(folder: Path, name: str, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def test_load_instruments_refuses_a_second_definition_of_the_same_id_and_version(
    tmp_path: Path,
) -> None:
    write(tmp_path / "site", "my-srs.json", definition("srs", title="Our own SRS"))

    with pytest.raises(ValueError, match="instrument srs v1 already defined at v1"):
        load_instruments(SHIPPED, tmp_path / "site")


def test_load_instruments_refuses_an_older_version_after_a_newer_one(tmp_path: Path) -> None:
    write(tmp_path / "a", "srs.json", definition("srs", version=2))
    write(tmp_path / "b", "srs.json", definition("srs", version=1))

    with pytest.raises(ValueError, match="already defined at v2"):
        load_instruments(tmp_path / "a", tmp_path / "b")


def test_load_instruments_takes_a_newer_version_from_a_site_folder(tmp_path: Path) -> None:
    write(tmp_path / "site", "srs-v2.json", definition("srs", version=2))

    assert load_instruments(SHIPPED, tmp_path / "site")["srs"].version == 2


def test_load_instruments_adds_a_site_instrument(tmp_path: Path) -> None:
    write(tmp_path / "site", "gad-2.json", definition("gad-7", id="gad-2", items=["1", "2"]))

    loaded = load_instruments(SHIPPED, tmp_path / "site")

    assert loaded["gad-2"].items == ["1", "2"]
    assert set(INSTRUMENTS) < set(loaded)
