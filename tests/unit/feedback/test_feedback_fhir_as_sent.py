"""The FHIR edge with what EHRs and form tools send (issue 20): PHQ-9, GAD-7 and ORS
QuestionnaireResponses in each shape (LOINC linkIds with and without the leading ``/``, items in
groups, the form's own non-scored items, ordinalValue codes, integers and decimals, the client
named by ``subject``), each validated as R4 by an independent model library (fhir.resources,
its R4B models, whose QuestionnaireResponse, Observation, Bundle, OperationOutcome and
CapabilityStatement are R4's), score and emit exactly what the JSON route does. Errors are
OperationOutcomes naming the item; scores read back as R4 Observations with LOINC codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from shared.instruments import SHIPPED, load_instruments
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.unit.feedback.test_feedback_api import emitted, response_count

LOINC = "http://loinc.org"
ANSWER_CODES = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
INSTRUMENTS = load_instruments(SHIPPED)
ANSWERS: dict[str, dict[str, Any]] = {
    "phq-9": {"1": 1, "2": 2, "3": 3, "4": 3, "5": 0, "6": 2, "7": 3, "8": 3, "9": 1},
    "gad-7": {"1": 2, "2": 1, "3": 3, "4": 0, "5": 2, "6": 1, "7": 3},
    "ors": {"individually": 4.5, "interpersonally": 6.1, "socially": 5, "overall": 3.2},
}
FHIR_HEADERS = {"content-type": "application/fhir+json"}


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings) as opened:
        yield opened


def _context(episode_id: str, session: int) -> list[dict[str, Any]]:
    return [
        {"url": "urn:rapport:fhir:episode-id", "valueString": episode_id},
        {"url": "urn:rapport:fhir:session-number", "valueInteger": session},
    ]


def _loinc(instrument: str, item: str) -> str:
    codes = INSTRUMENTS[instrument].loinc.get("items")
    return str(codes[item]) if isinstance(codes, dict) else item


def _value(instrument: str, value: float) -> dict[str, Any]:
    if INSTRUMENTS[instrument].answers:
        return {"valueCoding": {"system": LOINC, "code": ANSWER_CODES[int(value)]}}
    return {"valueDecimal": value}


def _panel(instrument: str) -> str:
    panel = INSTRUMENTS[instrument].loinc.get("panel")
    return f"{LOINC}/q/{panel}" if panel else f"urn:rapport:questionnaire:{instrument}"


def loinc_flat(instrument: str, episode_id: str, session: int) -> dict[str, Any]:
    """LOINC item codes as linkIds (own ids where the instrument has no codes), coded answers."""
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": _panel(instrument),
        "extension": _context(episode_id, session),
        "item": [
            {"linkId": _loinc(instrument, k), "answer": [_value(instrument, v)]}
            for k, v in ANSWERS[instrument].items()
        ],
    }


def lhc_forms(instrument: str, episode_id: str, session: int) -> dict[str, Any]:
    """As LHC-Forms writes it: ``/``-prefixed linkIds nested in a group, the form's difficulty
    item and its own (correct) total, the client named by ``subject`` and the respondent by
    ``source`` instead of the episode and role extensions."""
    answers = ANSWERS[instrument]
    items: list[dict[str, Any]] = [
        {"linkId": f"/{_loinc(instrument, k)}", "answer": [_value(instrument, v)]}
        for k, v in answers.items()
    ]
    loinc = INSTRUMENTS[instrument].loinc
    extra = loinc.get("not_scored")
    if isinstance(extra, list):
        difficulty = {"system": LOINC, "code": "LA6572-7", "display": "Somewhat difficult"}
        items.append({"linkId": f"/{extra[0]}", "answer": [{"valueCoding": difficulty}]})
    if "total" in loinc:
        total = int(sum(answers.values()))
        items.append({"linkId": f"/{loinc['total']}", "answer": [{"valueInteger": total}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": _panel(instrument),
        "extension": [{"url": "urn:rapport:fhir:session-number", "valueInteger": session}],
        "subject": {"identifier": {"system": "urn:clinic:mrn", "value": "ref-1"}},
        "source": {"reference": "Patient/ref-1"},
        "item": [{"linkId": f"/{loinc.get('panel', 'group')}", "text": "group", "item": items}],
    }


def deep_ordinal(instrument: str, episode_id: str, session: int) -> dict[str, Any]:
    """A form tool's own answer codes carrying an ordinalValue, items two groups deep under the
    instrument's own ids, and an integer or decimal where there is no code."""
    items = []
    for k, v in ANSWERS[instrument].items():
        coding = {
            "system": "urn:formtool:answers",
            "code": f"a{v}",
            "extension": [{"url": ORDINAL, "valueDecimal": v}],
        }
        items.append({"linkId": k, "answer": [{"valueCoding": coding}]})
    first, rest = items[:2], items[2:]
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": f"Questionnaire/{instrument}",
        "extension": _context(episode_id, session),
        "item": [
            {"linkId": "page-1", "item": [{"linkId": "part-a", "item": first}]},
            {"linkId": "page-2", "item": rest},
        ],
    }


def plain_numbers(instrument: str, episode_id: str, session: int) -> dict[str, Any]:
    """valueInteger for whole-number instruments, valueDecimal otherwise, own ids."""
    key = "valueInteger" if INSTRUMENTS[instrument].step == 1 else "valueDecimal"
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": f"urn:rapport:questionnaire:{instrument}|1",
        "extension": _context(episode_id, session),
        "item": [{"linkId": k, "answer": [{key: v}]} for k, v in ANSWERS[instrument].items()],
    }


SHAPES: list[Callable[[str, str, int], dict[str, Any]]] = [
    loinc_flat,
    lhc_forms,
    deep_ordinal,
    plain_numbers,
]
SESSION_DEPENDENT = {
    "response_id",
    "session_number",
    "answered_at",
    "at",  # session.attended (implied by the response): when it was answered
    "first_total",
    "change_from_first",
    "reliable_change",
    "clinically_significant_change",
}


def stripped(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (kind, {k: v for k, v in data.items() if k not in SESSION_DEPENDENT})
        for kind, data in events
    ]


async def post_fhir(desk: FeedbackDesk, resource: dict[str, Any], path: str = "") -> Any:
    return await desk.http.post(
        f"/feedback/fhir{path}",
        headers={**desk.auth("therapist"), **FHIR_HEADERS},
        content=json.dumps(resource),
    )


@pytest.mark.parametrize("instrument", ["phq-9", "gad-7", "ors"])
async def test_every_shape_scores_and_emits_what_the_json_route_does(
    desk: FeedbackDesk, instrument: str
) -> None:
    episode_id = await desk.open_episode()
    via_json = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": 1,
            "respondent_role": "client",
            "instrument": instrument,
            "items": ANSWERS[instrument],
        },
    )
    assert via_json.status_code == 201, via_json.text
    expected = stripped(await emitted(desk))
    scored = {k: v for k, v in via_json.json().items() if k not in SESSION_DEPENDENT}
    for session, shape in enumerate(SHAPES, start=2):
        resource = shape(instrument, episode_id, session)
        QuestionnaireResponse.model_validate(resource)  # what we send is R4
        before = len(await emitted(desk))
        answered = await post_fhir(desk, resource, "/QuestionnaireResponse")
        assert answered.status_code == 201, (shape.__name__, answered.text)
        body = answered.json()
        assert body.pop("warnings") == [], shape.__name__
        assert {k: v for k, v in body.items() if k not in SESSION_DEPENDENT} == scored
        assert stripped((await emitted(desk))[before:]) == expected, shape.__name__


async def test_a_form_total_that_disagrees_is_reported_as_a_warning(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    resource = lhc_forms("phq-9", episode_id, 1)
    group = resource["item"][0]["item"]
    group[-1]["answer"] = [{"valueInteger": 3}]  # the form's total; ours is 18
    answered = await post_fhir(desk, resource, "/QuestionnaireResponse")
    assert answered.status_code == 201, answered.text
    assert answered.json()["total"] == 18
    [warning] = answered.json()["warnings"]
    assert (warning["field"], warning["rule"]) == ("items.total", "form_total_differs")
    assert "3" in warning["message"] and "18" in warning["message"]


def _twice(resource: dict[str, Any]) -> None:
    resource["item"].append({"linkId": "/44250-9", "answer": [{"valueInteger": 0}]})


def _missing(resource: dict[str, Any]) -> None:
    resource["item"][0]["item"] = resource["item"][0]["item"][:8]  # item 9 (44260-8) left out


def _foreign_code(resource: dict[str, Any]) -> None:
    coding = {
        "system": LOINC,
        "code": "LA6572-7",
        "extension": [{"url": ORDINAL, "valueInteger": 1}],
    }
    resource["item"][0]["item"][1]["answer"] = [{"valueCoding": coding}]


def _unknown_questionnaire(resource: dict[str, Any]) -> None:
    resource["questionnaire"] = "http://loinc.org/q/99999-9"


@pytest.mark.parametrize(
    ("spoil", "field", "rule", "status"),
    [
        (_twice, "items.1", "duplicate_item", 422),
        (_missing, "items.9", "missing", 422),
        (_foreign_code, "items.2.answer", "unknown_answer_code", 422),
        (_unknown_questionnaire, "questionnaire", "unknown_questionnaire", 422),
    ],
)
async def test_bad_input_gets_an_operation_outcome_naming_the_item_and_stores_nothing(
    desk: FeedbackDesk, spoil: Callable[[dict[str, Any]], None], field: str, rule: str, status: int
) -> None:
    episode_id = await desk.open_episode()
    for path in ("/QuestionnaireResponse/$validate", "/QuestionnaireResponse"):
        resource = lhc_forms("phq-9", episode_id, 1)
        spoil(resource)
        answered = await post_fhir(desk, resource, path)
        assert answered.status_code == status, answered.text
        assert answered.headers["content-type"] == "application/fhir+json"
        outcome = OperationOutcome.model_validate(answered.json())
        assert [(i.expression, i.details.coding[0].code) for i in outcome.issue] == [
            ([field], rule)
        ]
    assert await response_count(desk) == 0
    assert await emitted(desk) == []


async def test_validate_checks_a_good_response_without_storing_it(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    answered = await post_fhir(
        desk, lhc_forms("gad-7", episode_id, 1), "/QuestionnaireResponse/$validate"
    )
    assert answered.status_code == 200, answered.text
    outcome = OperationOutcome.model_validate(answered.json())
    assert [i.severity for i in outcome.issue] == ["information"]
    assert await response_count(desk) == 0
    assert await emitted(desk) == []


async def test_a_bundle_answers_each_entry_and_one_bad_entry_stops_no_other(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    bad = loinc_flat("phq-9", episode_id, 2)
    bad["item"][3]["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA0000-0"}}]
    for kind in ("batch", "transaction"):
        first = 1 if kind == "batch" else 4
        bundle = {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [
                {"resource": r, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
                for r in (
                    lhc_forms("phq-9", episode_id, first),
                    bad,
                    plain_numbers("ors", episode_id, first + 1),
                )
            ],
        }
        Bundle.model_validate(bundle)
        answered = await post_fhir(desk, bundle)
        assert answered.status_code == 200, answered.text
        response = Bundle.model_validate(answered.json())
        assert response.type == f"{kind}-response"
        statuses = [e.response.status for e in response.entry]
        assert statuses == ["201 Created", "422 Unprocessable Entity", "201 Created"]
        [issue] = response.entry[1].response.outcome.issue
        assert (issue.expression, issue.details.coding[0].code) == (
            ["items.4.answer"],
            "unknown_answer_code",
        )
        assert response.entry[0].response.location.startswith("QuestionnaireResponse/")
    assert await response_count(desk) == 4


async def test_a_bundle_with_no_recordable_entry_is_refused_whole(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": loinc_flat("phq-9", episode_id, 1)}],
    }
    answered = await desk.http.post(
        "/feedback/fhir",
        headers={**desk.auth("therapist", sites=("site-b",)), **FHIR_HEADERS},
        content=json.dumps(bundle),
    )
    assert answered.status_code == 404, answered.text
    outcome = OperationOutcome.model_validate(answered.json())
    assert outcome.issue[0].expression == ["Bundle.entry[0].resource.episode_id"]
    assert await response_count(desk) == 0


async def test_subject_and_encounter_context_is_checked(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    someone_else = lhc_forms("phq-9", episode_id, 1)
    someone_else["subject"] = {"reference": "Patient/ref-2"}
    someone_else["extension"] += _context(episode_id, 1)[:1]
    answered = await post_fhir(desk, someone_else, "/QuestionnaireResponse")
    assert answered.status_code == 422, answered.text
    assert answered.json()["issue"][0]["expression"] == ["subject"]
    unknown = lhc_forms("phq-9", episode_id, 1)
    unknown["subject"] = {"reference": "Patient/ref-2"}
    answered = await post_fhir(desk, unknown, "/QuestionnaireResponse")
    assert answered.status_code == 404, answered.text
    assert answered.json()["issue"][0]["expression"] == ["subject"]
    encounter_only = lhc_forms("phq-9", episode_id, 1)
    encounter_only["extension"] = []
    encounter_only["encounter"] = {"identifier": {"value": "enc-77"}}
    answered = await post_fhir(desk, encounter_only, "/QuestionnaireResponse")
    assert answered.status_code == 422, answered.text
    assert answered.json()["issue"][0]["expression"] == ["encounter"]
    assert await response_count(desk) == 0


async def test_scores_read_back_as_r4_observations_with_loinc_codes(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    ids = {}
    for instrument in ("phq-9", "gad-7", "ors"):
        answered = await post_fhir(
            desk, plain_numbers(instrument, episode_id, 1), "/QuestionnaireResponse"
        )
        assert answered.status_code == 201, answered.text
        ids[instrument] = answered.json()["response_id"]
    got = await desk.http.get(
        "/feedback/fhir/Observation",
        params={"episode": episode_id},
        headers=desk.auth("therapist"),
    )
    assert got.status_code == 200, got.text
    bundle = Bundle.model_validate(got.json())
    observations = [Observation.model_validate(e.resource.model_dump()) for e in bundle.entry]
    by_source = {o.derivedFrom[0].reference: o for o in observations}
    phq9 = by_source[f"QuestionnaireResponse/{ids['phq-9']}"]
    gad7 = by_source[f"QuestionnaireResponse/{ids['gad-7']}"]
    ors = by_source[f"QuestionnaireResponse/{ids['ors']}"]
    assert (phq9.code.coding[0].system, phq9.code.coding[0].code) == (LOINC, "44261-6")
    assert (gad7.code.coding[0].system, gad7.code.coding[0].code) == (LOINC, "70274-6")
    assert all(c.system != LOINC for c in ors.code.coding)  # ORS has no LOINC code
    assert float(phq9.valueQuantity.value) == 18
    assert float(gad7.valueQuantity.value) == 12
    assert float(ors.valueQuantity.value) == pytest.approx(18.8)
    bands = {o.interpretation[0].coding[0].code for o in (phq9, gad7)}
    assert bands == {"moderately_severe", "moderate"}
    assert [i.coding[0].code for i in phq9.interpretation][1] == "A"  # in the clinical range
    assert [i.coding[0].code for i in ors.interpretation] == ["A"]  # 18.8 < 25
    later = await desk.http.get(
        "/feedback/fhir/Observation",
        params={"date": "ge2999-01-01"},
        headers=desk.auth("therapist"),
    )
    assert later.status_code == 200 and later.json()["total"] == 0
    since = await desk.http.get(
        "/feedback/fhir/Observation",
        params=[("date", "ge2000-01-01"), ("date", "le2999-01-01")],
        headers=desk.auth("therapist"),
    )
    assert since.json()["total"] == 3


async def test_observations_of_another_sites_episode_are_not_found(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    answered = await post_fhir(
        desk, plain_numbers("gad-7", episode_id, 1), "/QuestionnaireResponse"
    )
    assert answered.status_code == 201, answered.text
    ours = await desk.http.get(
        "/feedback/fhir/Observation", params={"episode": episode_id}, headers=desk.auth("therapist")
    )
    assert ours.status_code == 200 and ours.json()["total"] == 1, ours.text
    for other in (desk.auth("therapist", sites=("site-b",)), desk.auth("therapist", sub="th-2")):
        got = await desk.http.get(
            "/feedback/fhir/Observation", params={"episode": episode_id}, headers=other
        )
        assert got.status_code == 404, got.text
        assert got.json()["issue"][0]["expression"] == ["episode"]


async def test_the_capability_statement_is_r4_and_lists_what_is_supported(
    desk: FeedbackDesk,
) -> None:
    got = await desk.http.get("/feedback/fhir/metadata", headers=desk.auth("therapist"))
    assert got.status_code == 200, got.text
    statement = CapabilityStatement.model_validate(got.json())
    assert statement.fhirVersion == "4.0.1"
    [rest] = statement.rest
    kinds = {r.type: r for r in rest.resource}
    assert set(kinds) == {"Questionnaire", "QuestionnaireResponse", "Observation", "Goal"}
    assert {i.code for i in kinds["Goal"].interaction} == {"read", "search-type", "create"}
    assert [o.name for o in kinds["QuestionnaireResponse"].operation] == ["validate"]
    assert {i.code for i in rest.interaction} == {"batch", "transaction"}
    # It says how the context and the scores back work: the encounter registration route and
    # the results webhook.
    context = kinds["QuestionnaireResponse"].documentation
    assert "/feedback/episodes/{episode_id}/sessions/{session_number}/encounter" in context
    assert "subject" in context and "author" in context
    assert '"results": {"webhook": true}' in kinds["Observation"].documentation


async def test_a_bundle_retried_with_its_idempotency_key_replays_each_entry(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": loinc_flat("phq-9", episode_id, 1)},
            {"resource": plain_numbers("ors", episode_id, 1)},
        ],
    }
    headers = {**desk.auth("therapist"), **FHIR_HEADERS, "Idempotency-Key": "k" * 200}
    first = await desk.http.post("/feedback/fhir", headers=headers, content=json.dumps(bundle))
    assert first.status_code == 200, first.text
    events = await emitted(desk)
    again = await desk.http.post("/feedback/fhir", headers=headers, content=json.dumps(bundle))
    assert again.status_code == 200, again.text
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK", "200 OK"]
    locations = [e["response"]["location"] for e in first.json()["entry"]]
    assert [e["response"]["location"] for e in again.json()["entry"]] == locations
    assert await emitted(desk) == events
    assert await response_count(desk) == 2
