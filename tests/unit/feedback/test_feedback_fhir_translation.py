"""The pure FHIR translation of feedback (issue 20): how linkIds, groups, answers, context and
the form's own total are read, and how Bundle outcomes and date searches are put together."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.feedback import fhir, fhir_results
from shared.instruments import SHIPPED, load_instruments

INSTRUMENTS = load_instruments(SHIPPED)
LOINC = "http://loinc.org"
GAD7_LOINC = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]


def gad7(items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://loinc.org/q/69737-5",
        "extension": [
            {"url": fhir.EXT_EPISODE, "valueString": "ep-1"},
            {"url": fhir.EXT_SESSION, "valueInteger": 3},
        ],
        "item": items,
        **extra,
    }


def answered(link_id: str, value: int) -> dict[str, Any]:
    return {"linkId": link_id, "answer": [{"valueInteger": value}]}


def parse(resource: dict[str, Any]) -> fhir.ParsedResponse:
    return fhir.parse_questionnaire_response(resource, INSTRUMENTS)


def refusal(resource: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(fhir.FhirError) as refused:
        parse(resource)
    return refused.value.field, refused.value.rule


@pytest.mark.parametrize("link_id", ["69725-0", "/69725-0", "/69737-5/69725-0", "1", " /69725-0/ "])
def test_a_linkid_names_an_item_by_code_with_or_without_slashes_or_by_own_id(
    link_id: str,
) -> None:
    items = [answered(code, 1) for code in GAD7_LOINC[1:]]
    assert parse(gad7([answered(link_id, 2), *items])).items["1"] == 2


def test_items_are_found_in_groups_and_under_answers_at_any_depth() -> None:
    deep = {"linkId": "g3", "item": [answered("/69736-7", 3)]}
    under_answer = {
        "linkId": "/69689-8",
        "answer": [{"valueInteger": 1, "item": [{"linkId": "g2", "item": [deep]}]}],
    }
    group = {"linkId": "g1", "item": [answered(c, 0) for c in GAD7_LOINC[:5]] + [under_answer]}
    parsed = parse(gad7([group]))
    assert parsed.items == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0, "6": 1, "7": 3}


def test_the_forms_own_items_are_not_scored_and_its_total_is_kept() -> None:
    items = [answered(c, 1) for c in GAD7_LOINC]
    difficulty = {"linkId": "/69730-0", "answer": [{"valueCoding": {"code": "LA6572-7"}}]}
    parsed = parse(gad7([*items, difficulty, answered("/70274-6", 7)]))
    assert set(parsed.items) == {"1", "2", "3", "4", "5", "6", "7"}
    assert parsed.form_total == 7
    assert fhir.total_warnings(parsed, Decimal(7)) == []
    assert fhir.total_warnings(parsed, Decimal("7.0")) == []
    [warning] = fhir.total_warnings(parsed, Decimal(8))
    assert warning["rule"] == "form_total_differs"


def test_no_form_total_no_warning() -> None:
    parsed = parse(gad7([answered(c, 1) for c in GAD7_LOINC]))
    assert parsed.form_total is None
    assert fhir.total_warnings(parsed, Decimal(99)) == []


@pytest.mark.parametrize(
    ("coding", "value"),
    [
        ({"system": LOINC, "code": "LA6571-9"}, 3),
        ({"code": "LA6568-5"}, 0),
        (
            {
                "system": "urn:tool",
                "code": "x",
                "extension": [{"url": fhir.EXT_ORDINAL, "valueDecimal": 2}],
            },
            2,
        ),
        (
            {
                "system": "urn:tool",
                "code": "y",
                "extension": [{"url": fhir.EXT_ITEM_WEIGHT, "valueInteger": 1}],
            },
            1,
        ),
    ],
)
def test_a_coded_answer_is_the_instruments_code_or_carries_its_ordinal(
    coding: dict[str, Any], value: int
) -> None:
    items = [answered(c, 1) for c in GAD7_LOINC[1:]]
    first = {"linkId": GAD7_LOINC[0], "answer": [{"valueCoding": coding}]}
    assert parse(gad7([first, *items])).items["1"] == value


@pytest.mark.parametrize(
    "coding",
    [
        {"system": LOINC, "code": "LA6572-7"},  # a LOINC answer, not one of GAD-7's
        {
            "system": LOINC,
            "code": "LA6572-7",
            "extension": [{"url": fhir.EXT_ORDINAL, "valueInteger": 1}],
        },
        {"system": "urn:tool", "code": "x"},  # no ordinal
    ],
)
def test_an_answer_code_not_the_instruments_is_refused(coding: dict[str, Any]) -> None:
    first = {"linkId": GAD7_LOINC[0], "answer": [{"valueCoding": coding}]}
    assert refusal(gad7([first])) == ("items.1.answer", "unknown_answer_code")


def test_an_item_answered_twice_or_with_two_answers_is_refused() -> None:
    assert refusal(gad7([answered("1", 1), answered("/69725-0", 1)])) == (
        "items.1",
        "duplicate_item",
    )
    two = {"linkId": "1", "answer": [{"valueInteger": 1}, {"valueInteger": 2}]}
    assert refusal(gad7([two])) == ("items.1", "one_answer")


def test_an_unknown_item_is_named() -> None:
    assert refusal(gad7([answered("/99999-9", 1)])) == ("items.99999-9", "unknown_item")


def test_the_respondent_comes_from_source() -> None:
    items = [answered(c, 1) for c in GAD7_LOINC]
    assert parse(gad7(items, source={"reference": "Patient/p1"})).respondent_role == "client"
    assert parse(gad7(items, source={"reference": "Practitioner/t1"})).respondent_role == (
        "therapist"
    )
    assert refusal(gad7(items, source={"reference": "RelatedPerson/r1"}))[1] == (
        "required_for_related_person"
    )
    mismatch = gad7(items, source={"reference": "Practitioner/t1"})
    mismatch["extension"].append({"url": fhir.EXT_ROLE, "valueCode": "client"})
    assert refusal(mismatch) == ("source", "respondent_mismatch")


def test_the_client_comes_from_subject_and_the_episode_may_then_be_left_out() -> None:
    items = [answered(c, 1) for c in GAD7_LOINC]
    resource = gad7(items, subject={"identifier": {"system": "urn:mrn", "value": "ref-9"}})
    resource["extension"] = resource["extension"][1:]
    parsed = parse(resource)
    assert (parsed.episode_id, parsed.client_reference) == (None, "ref-9")
    resource["subject"] = {"reference": "Group/g1"}
    assert refusal(resource) == ("subject", "invalid")
    del resource["subject"]
    assert refusal(resource) == (f"extension[{fhir.EXT_EPISODE}]", "required")


def test_an_encounter_without_the_session_number_is_refused_by_name() -> None:
    resource = gad7([], encounter={"reference": "Encounter/e1"})
    resource["extension"] = resource["extension"][:1]
    assert refusal(resource) == ("encounter", "unknown_encounter")


def test_date_search_bounds() -> None:
    since, until = fhir_results.date_range(["ge2026-01-01", "le2026-02-01T00:00:00Z"])
    assert since == datetime(2026, 1, 1, tzinfo=UTC)
    assert until == datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(fhir.FhirError):
        fhir_results.date_range(["2026-01-01"])
    with pytest.raises(fhir.FhirError):
        fhir_results.date_range(["genot-a-date"])


def test_a_bundle_is_refused_whole_only_when_every_entry_was_refused_alike() -> None:
    ok = fhir_results.entry_response(
        201, fhir_results.warning_outcome([]), "QuestionnaireResponse/1"
    )
    outcome = {"resourceType": "OperationOutcome", "issue": [{"expression": ["items.1"]}]}
    missing = fhir_results.entry_response(404, outcome)
    invalid = fhir_results.entry_response(422, outcome)
    assert fhir_results.all_refused([ok, missing]) is None
    assert fhir_results.all_refused([missing, invalid]) is None
    status, whole = fhir_results.all_refused([missing, missing]) or (0, {})
    assert status == 404
    assert [i["expression"] for i in whole["issue"]] == [
        ["Bundle.entry[0].resource.items.1"],
        ["Bundle.entry[1].resource.items.1"],
    ]
