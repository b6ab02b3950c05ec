"""FHIR R4 edges of feedback: instruments as ``Questionnaire`` resources, and answers taken from
``QuestionnaireResponse`` resources (LOINC-coded PHQ-9 and GAD-7 accepted). Pure translation.

Rapport-specific context travels in extensions on the QuestionnaireResponse:
``urn:rapport:fhir:episode-id`` (valueString), ``urn:rapport:fhir:session-number``
(valueInteger), ``urn:rapport:fhir:respondent-role`` (valueCode client|partner|family|therapist)
and, for partners and family, ``urn:rapport:fhir:respondent-ref`` (valueString).

``status: amended`` replaces the answer already recorded for the same episode, session,
respondent and questionnaire; ``completed`` when there is one is refused with an
OperationOutcome (409) whose issue names the standing response
(``urn:rapport:fhir:existing-response``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.errors import Invalid
from shared.instruments import Instrument

EXT_EPISODE = "urn:rapport:fhir:episode-id"
EXT_SESSION = "urn:rapport:fhir:session-number"
EXT_ROLE = "urn:rapport:fhir:respondent-role"
EXT_REF = "urn:rapport:fhir:respondent-ref"
EXT_EXISTING = "urn:rapport:fhir:existing-response"
LOINC = "http://loinc.org"
CANONICAL_PREFIX = "urn:rapport:questionnaire:"


class FhirError(Invalid):
    """A QuestionnaireResponse that cannot be read: the field (a FHIR path) and the rule."""

    title = "Invalid QuestionnaireResponse"

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[{"field": field, "rule": rule}])
        self.field = field
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class ParsedResponse:
    episode_id: str
    session_number: int
    respondent_role: str
    respondent_ref: str | None
    instrument: str
    items: dict[str, object]
    authored: str | None
    amended: bool = False

    def answered_at(self) -> datetime | None:
        """When the respondent answered (``authored``), None when the resource does not say."""
        if not self.authored:
            return None
        try:
            return datetime.fromisoformat(self.authored.replace("Z", "+00:00"))
        except ValueError:
            raise FhirError("authored", "datetime", "not an ISO 8601 date-time") from None


def canonical(instrument: Instrument) -> str:
    return f"{CANONICAL_PREFIX}{instrument.id}|{instrument.version}"


def questionnaire(instrument: Instrument) -> dict[str, Any]:
    """The instrument as an R4 Questionnaire: ids and answer ranges always; wording only for
    instruments that are free to use (ORS/SRS/WAI wording is licensed by their authors)."""
    loinc: dict[str, Any] = dict(instrument.loinc)
    loinc_items = _loinc_items(instrument)
    integer = instrument.step == 1
    items: list[dict[str, Any]] = []
    for item_id in instrument.items:
        item: dict[str, Any] = {
            "linkId": item_id,
            "type": "integer" if integer else "decimal",
            "required": True,
        }
        if instrument.free_to_use and item_id in instrument.wording:
            item["text"] = instrument.wording[item_id]
        if item_id in loinc_items:
            item["code"] = [{"system": LOINC, "code": loinc_items[item_id]}]
        if instrument.answers:
            item["type"] = "choice"
            item["answerOption"] = [
                {"valueCoding": {"system": LOINC, "code": a["code"], "display": a["display"]}}
                for a in instrument.answers
            ]
        else:
            item["extension"] = [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/minValue",
                    ("valueInteger" if integer else "valueDecimal"): _number(instrument.item_min),
                },
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/maxValue",
                    ("valueInteger" if integer else "valueDecimal"): _number(instrument.item_max),
                },
            ]
        items.append(item)
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": instrument.id,
        "url": f"{CANONICAL_PREFIX}{instrument.id}",
        "version": str(instrument.version),
        "name": instrument.id.replace("-", "_").upper(),
        "title": instrument.title,
        "status": "active",
        "subjectType": ["Patient"],
    }
    if items:  # FHIR JSON has no empty arrays
        resource["item"] = items
    if instrument.open_items is not None:
        # Goal ratings: each answer's linkId is one of the episode's goal ids (0-10 each).
        resource["item"] = [_open_item(instrument)]
    if "panel" in loinc:
        resource["code"] = [{"system": LOINC, "code": loinc["panel"]}]
    if instrument.free_to_use and instrument.preamble:
        resource["description"] = instrument.preamble
    return resource


def _open_item(instrument: Instrument) -> dict[str, Any]:
    """The template of an open-items answer: a QuestionnaireResponse names each goal it rates
    by the goal's id as its ``linkId`` (the episode's goals, not this Questionnaire, list them)."""
    return {
        "linkId": "goal-id",
        "text": "One answer per active goal of the episode; its linkId is the goal's id.",
        "type": "integer",
        "repeats": True,
        "required": True,
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/minValue",
                "valueInteger": _number(instrument.item_min),
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/maxValue",
                "valueInteger": _number(instrument.item_max),
            },
        ],
    }


def _loinc_items(instrument: Instrument) -> dict[str, str]:
    items = instrument.loinc.get("items")
    return {str(k): str(v) for k, v in items.items()} if isinstance(items, dict) else {}


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension
    return None


def _resolve_instrument(reference: object, instruments: dict[str, Instrument]) -> Instrument:
    if not isinstance(reference, str) or not reference:
        raise FhirError(
            "questionnaire", "required", "questionnaire must reference one of our Questionnaires"
        )
    bare = reference.split("|")[0]
    for instrument in instruments.values():
        panel = instrument.loinc.get("panel")
        names = {
            f"{CANONICAL_PREFIX}{instrument.id}",
            f"Questionnaire/{instrument.id}",
            instrument.id,
        }
        if panel:
            names |= {f"{LOINC}/q/{panel}", f"{LOINC}/{panel}", f"Questionnaire/{panel}"}
        if bare in names:
            return instrument
    raise FhirError(
        "questionnaire",
        "unknown_questionnaire",
        f"questionnaire {reference!r} is not one of ours ({', '.join(sorted(instruments))})",
    )


def _answer_value(instrument: Instrument, link_id: str, answer: object) -> object:
    if not isinstance(answer, dict):
        raise FhirError(f"items.{link_id}.answer", "invalid", "answer must be an object")
    for key in ("valueInteger", "valueDecimal"):
        if key in answer:
            return answer[key]
    if "valueCoding" in answer:
        coding = answer["valueCoding"]
        code = coding.get("code") if isinstance(coding, dict) else None
        for option in instrument.answers:
            if option.get("code") == code:
                return option["value"]
        raise FhirError(
            f"items.{link_id}.answer",
            "unknown_answer_code",
            f"answer code {code!r} is not an answer of {instrument.id}",
        )
    raise FhirError(
        f"items.{link_id}.answer",
        "unsupported_value",
        "answer must be valueInteger, valueDecimal or a LOINC valueCoding",
    )


def parse_questionnaire_response(
    resource: object, instruments: dict[str, Instrument]
) -> ParsedResponse:
    if not isinstance(resource, dict) or resource.get("resourceType") != "QuestionnaireResponse":
        raise FhirError(
            "resourceType",
            "not_questionnaire_response",
            "the body must be a FHIR R4 QuestionnaireResponse",
        )
    if resource.get("status") not in {"completed", "amended"}:
        raise FhirError(
            "status",
            "not_completed",
            "only a completed (or amended) QuestionnaireResponse can be scored",
        )
    instrument = _resolve_instrument(resource.get("questionnaire"), instruments)
    episode = _extension(resource, EXT_EPISODE)
    session = _extension(resource, EXT_SESSION)
    role = _extension(resource, EXT_ROLE)
    ref = _extension(resource, EXT_REF)
    if episode is None or not isinstance(episode.get("valueString"), str):
        raise FhirError(
            f"extension[{EXT_EPISODE}]",
            "required",
            "the episode id extension (valueString) is required",
        )
    if (
        session is None
        or not isinstance(session.get("valueInteger"), int)
        or isinstance(session.get("valueInteger"), bool)
    ):
        raise FhirError(
            f"extension[{EXT_SESSION}]",
            "required",
            "the session number extension (valueInteger) is required",
        )
    role_code = role.get("valueCode") if role is not None else "client"
    by_loinc = {code: item for item, code in _loinc_items(instrument).items()}
    items: dict[str, object] = {}
    raw_items = resource.get("item")
    if not isinstance(raw_items, list):
        raise FhirError("item", "required", "item must be a list of answered items")
    for index, entry in enumerate(raw_items):
        if not isinstance(entry, dict) or not isinstance(entry.get("linkId"), str):
            raise FhirError(f"item.{index}.linkId", "required", "each item needs a linkId")
        given: str = entry["linkId"]
        link_id = by_loinc.get(given, given)
        answers = entry.get("answer")
        if not isinstance(answers, list) or len(answers) != 1:
            raise FhirError(f"items.{link_id}", "one_answer", f"item {link_id} needs one answer")
        if link_id in items:
            raise FhirError(
                f"items.{link_id}", "duplicate_item", f"item {link_id} is answered twice"
            )
        items[link_id] = _answer_value(instrument, link_id, answers[0])
    return ParsedResponse(
        episode_id=episode["valueString"],
        session_number=session["valueInteger"],
        respondent_role=str(role_code),
        respondent_ref=ref.get("valueString") if ref is not None else None,
        instrument=instrument.id,
        items=items,
        authored=resource.get("authored") if isinstance(resource.get("authored"), str) else None,
        amended=resource.get("status") == "amended",
    )


# FHIR R4 IssueType codes for the HTTP statuses a QuestionnaireResponse can be refused with.
ISSUE_CODES = {409: "duplicate", 404: "not-found", 403: "forbidden", 422: "invalid"}


def operation_outcome(
    status: int, title: str, detail: str, existing_response_id: str | None = None
) -> dict[str, Any]:
    """An R4 OperationOutcome with one error issue; a duplicate names the standing response."""
    issue: dict[str, Any] = {
        "severity": "error",
        "code": ISSUE_CODES.get(status, "processing"),
        "details": {"text": title},
        "diagnostics": detail,
    }
    if existing_response_id is not None:
        issue["extension"] = [
            {
                "url": EXT_EXISTING,
                "valueReference": {"reference": f"QuestionnaireResponse/{existing_response_id}"},
            }
        ]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
