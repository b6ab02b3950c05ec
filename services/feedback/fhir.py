"""FHIR R4 edges of feedback: instruments as ``Questionnaire`` resources, and answers taken from
``QuestionnaireResponse`` resources as EHRs and form tools send them. Pure translation.

Items: linkIds are the instrument's ids or LOINC item codes, with or without the leading ``/``
(LHC-Forms, SDC), nested in groups at any depth; items the form adds that are not scored (the
panel, the total, ``loinc.not_scored`` such as PHQ-9's difficulty item 69722-7) are ignored, and
the form's own total is kept to be compared with ours (:func:`total_warnings`). Answers:
``valueInteger``, ``valueDecimal``, ``valueCoding`` (the instrument's LOINC answer codes, or a
code with an ``ordinalValue``/``itemWeight`` extension).

Context: ``urn:rapport:fhir:episode-id`` (valueString) or ``subject`` (the client reference,
resolved by the use case), ``urn:rapport:fhir:session-number`` (valueInteger) or ``encounter``
(an Encounter identifier the front-end registered for the session, which names the episode
too), ``urn:rapport:fhir:respondent-role`` (valueCode client|partner|family|therapist) or
``source``/``author`` (Patient, Practitioner; a RelatedPerson with the role extension) and,
for partners and family, ``urn:rapport:fhir:respondent-ref`` (valueString, else the
RelatedPerson's id).

``status: amended`` replaces the answer already recorded for the same episode, session,
respondent and questionnaire; ``completed`` when there is one is refused with an
OperationOutcome (409) whose issue names the standing response
(``urn:rapport:fhir:existing-response``).

Over 500 lines: one translation in both directions (instruments out, answers in) whose item,
answer and context rules are read together; the Observations going back are in
``shared/fhir_observations.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.errors import Invalid
from shared.fhir_observations import EXT_EPISODE, EXT_SESSION, LOINC
from shared.instruments import Instrument

EXT_ROLE = "urn:rapport:fhir:respondent-role"
EXT_REF = "urn:rapport:fhir:respondent-ref"
EXT_EXISTING = "urn:rapport:fhir:existing-response"
EXT_ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
CANONICAL_PREFIX = "urn:rapport:questionnaire:"


class FhirError(Invalid):
    """A QuestionnaireResponse that cannot be read: the field (a FHIR path) and the rule."""

    title = "Invalid QuestionnaireResponse"

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}", errors=[{"field": field, "rule": rule, "message": message}]
        )
        self.field = field
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class ParsedResponse:
    episode_id: str | None  # None: resolve it from the subject (or the encounter)
    session_number: int | None  # None: the session registered for ``encounter``
    respondent_role: str
    respondent_ref: str | None
    instrument: str
    items: dict[str, object]
    authored: str | None
    amended: bool = False
    client_reference: str | None = None  # from ``subject``: the clinic's client reference
    encounter: tuple[str, str] | None = None  # the ``encounter`` identifier (system, value)
    form_total: object | None = None  # the total item the form computed, if it sent one

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
    coded = loinc_items(instrument)
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
        if item_id in coded:
            item["code"] = [{"system": LOINC, "code": coded[item_id]}]
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


def loinc_items(instrument: Instrument) -> dict[str, str]:
    items = instrument.loinc.get("items")
    return {str(k): str(v) for k, v in items.items()} if isinstance(items, dict) else {}


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    extensions = resource.get("extension")
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension
    return None


def resolve_instrument(reference: object, instruments: dict[str, Instrument]) -> Instrument:
    """The instrument a ``questionnaire`` canonical names (ours, or the LOINC panel's)."""
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
            names |= {
                f"{LOINC}/q/{panel}",
                f"{LOINC}/{panel}",
                f"Questionnaire/{panel}",
                str(panel),
            }
        if bare in names:
            return instrument
    raise FhirError(
        "questionnaire",
        "unknown_questionnaire",
        f"questionnaire {reference!r} is not one of ours ({', '.join(sorted(instruments))})",
    )


def _ordinal(coding: dict[str, Any]) -> object | None:
    """The value an ``ordinalValue`` (or ``itemWeight``) extension on a coding gives it."""
    for url in (EXT_ORDINAL, EXT_ITEM_WEIGHT):
        extension = _extension(coding, url)
        if extension is not None:
            for key in ("valueDecimal", "valueInteger"):
                if key in extension:
                    value: object = extension[key]
                    return value
    return None


def _answer_value(instrument: Instrument, field: str, answer: object) -> object:
    if not isinstance(answer, dict):
        raise FhirError(f"{field}.answer", "invalid", "answer must be an object")
    for key in ("valueInteger", "valueDecimal"):
        if key in answer:
            return answer[key]
    if "valueCoding" in answer:
        coding = answer["valueCoding"]
        coding = coding if isinstance(coding, dict) else {}
        code = coding.get("code")
        for option in instrument.answers:
            if option.get("code") == code and coding.get("system", LOINC) == LOINC:
                return option["value"]
        ordinal = _ordinal(coding)
        theirs = coding.get("system") == LOINC and bool(instrument.answers)
        if ordinal is not None and not theirs:
            return ordinal
        valid = ", ".join(str(a.get("code")) for a in instrument.answers) or "none"
        raise FhirError(
            f"{field}.answer",
            "unknown_answer_code",
            f"answer code {code!r} is not an answer of {instrument.id} (its codes: {valid}; "
            "another code needs an ordinalValue or itemWeight extension)",
        )
    raise FhirError(
        f"{field}.answer",
        "unsupported_value",
        "answer must be valueInteger, valueDecimal or a valueCoding",
    )


def _answered_items(entries: object, path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every item with its FHIR path, groups (and items nested under answers) walked at any
    depth, in document order."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise FhirError(path, "invalid", f"{path} must be a list of items")
    found: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("linkId"), str):
            raise FhirError(f"{where}.linkId", "required", "each item needs a linkId")
        found.append((where, entry))
        found.extend(_answered_items(entry.get("item"), f"{where}.item"))
        given = entry.get("answer")
        for number, answer in enumerate(given if isinstance(given, list) else []):
            if isinstance(answer, dict):
                nested = f"{where}.answer[{number}].item"
                found.extend(_answered_items(answer.get("item"), nested))
    return found


def _item_names(instrument: Instrument) -> tuple[dict[str, str], set[str]]:
    """How a linkId may name each scored item (its id, its LOINC code), and the LOINC codes of
    items a form adds that are not scored (the panel, the total, e.g. PHQ-9's difficulty)."""
    names = {item: item for item in instrument.items}
    names |= {code: item for item, code in loinc_items(instrument).items()}
    extra = instrument.loinc.get("not_scored")
    ignored = {str(c) for c in extra} if isinstance(extra, list) else set()
    for key in ("panel", "total"):
        if isinstance(instrument.loinc.get(key), str):
            ignored.add(str(instrument.loinc[key]))
    return names, ignored


def _open_item_id(instrument: Instrument, given: str) -> str | None:
    """An open-items instrument (goal ratings) names its items by the episode's own ids: any
    well-formed id is one here; whether the episode has it is checked where the episode is
    known (an unknown goal is refused there, naming it)."""
    open_items = instrument.open_items
    if open_items is not None and re.fullmatch(open_items.id_pattern, given):
        return given
    return None


def _bare(link_id: str) -> str:
    """``/44250-9`` (LHC-Forms, SDC) and ``/44249-1/44250-9`` name item 44250-9."""
    return link_id.strip().rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Answers:
    items: dict[str, object]
    form_total: object | None


def read_items(instrument: Instrument, raw_items: object) -> Answers:
    """The scored items' answers, by the instrument's own ids; the total the form computed."""
    if not isinstance(raw_items, list):
        raise FhirError("item", "required", "item must be a list of answered items")
    names, ignored = _item_names(instrument)
    total_code = instrument.loinc.get("total")
    items: dict[str, object] = {}
    form_total: object | None = None
    for where, entry in _answered_items(raw_items, "item"):
        given = _bare(entry["linkId"])
        answers = entry.get("answer") or []
        if not isinstance(answers, list):
            raise FhirError(f"{where}.answer", "invalid", "answer must be a list")
        if given in ignored or (given not in names and entry.get("item") and not answers):
            if given == total_code and answers and isinstance(answers[0], dict):
                form_total = next(
                    (answers[0][k] for k in ("valueInteger", "valueDecimal") if k in answers[0]),
                    None,
                )
            continue  # a group, or an item the form adds that is not scored
        item = names.get(given) or _open_item_id(instrument, given)
        if item is None:
            raise FhirError(
                f"items.{given}",
                "unknown_item",
                f"{instrument.id} has no item {given!r} (linkId {entry['linkId']!r} at {where})",
            )
        if not answers:
            continue  # unanswered: reported as missing when the item is required
        if len(answers) != 1:
            raise FhirError(f"items.{item}", "one_answer", f"item {item} needs one answer")
        if item in items:
            raise FhirError(
                f"items.{item}", "duplicate_item", f"item {item} is answered twice (at {where})"
            )
        items[item] = _answer_value(instrument, f"items.{item}", answers[0])
    return Answers(items, form_total)


def _reference(value: object) -> tuple[str | None, str | None]:
    """A Reference's resource type and id (or identifier value): ``Patient/p1`` → (Patient, p1)."""
    if not isinstance(value, dict):
        return None, None
    kind = value.get("type") if isinstance(value.get("type"), str) else None
    reference = value.get("reference")
    if isinstance(reference, str) and "/" in reference:
        kind, _, rest = reference.rstrip("/").rpartition("/")
        return kind.rsplit("/", 1)[-1], rest
    identifier = value.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        return kind, identifier["value"]
    return kind, None


RESPONDENT_KINDS = {
    "Patient": "client",
    "Practitioner": "therapist",
    "PractitionerRole": "therapist",
}


def _respondent(resource: dict[str, Any]) -> tuple[str, str | None]:
    """Who answered: the role extension, else ``source`` (or a Patient/RelatedPerson
    ``author``); a RelatedPerson needs the role extension to say partner or family."""
    role = _extension(resource, EXT_ROLE)
    ref = _extension(resource, EXT_REF)
    named_role = role.get("valueCode") if role is not None else None
    named_ref = ref.get("valueString") if ref is not None else None
    field = "source"
    kind, who = _reference(resource.get("source"))
    if kind is None:
        field = "author"
        kind, who = _reference(resource.get("author"))
        if kind not in {"Patient", "RelatedPerson"}:
            kind, who = None, None
    if kind == "RelatedPerson":
        if named_role not in {"partner", "family"}:
            raise FhirError(
                f"extension[{EXT_ROLE}]",
                "required_for_related_person",
                f"a RelatedPerson {field} needs the respondent-role extension (partner|family)",
            )
        return str(named_role), named_ref or who
    implied = RESPONDENT_KINDS.get(kind or "")
    if implied is not None and named_role is not None and named_role != implied:
        raise FhirError(
            field, "respondent_mismatch", f"{field} is a {kind}, the extension says {named_role}"
        )
    return str(named_role or implied or "client"), named_ref


def _context(resource: dict[str, Any]) -> tuple[str | None, int | None]:
    """The episode and session from the ``urn:rapport:fhir:*`` extensions (None: not given;
    the session is None only when an ``encounter`` is to name it)."""
    episode = _extension(resource, EXT_EPISODE)
    session = _extension(resource, EXT_SESSION)
    episode_id = None
    if episode is not None:
        if not isinstance(episode.get("valueString"), str):
            raise FhirError(f"extension[{EXT_EPISODE}]", "invalid", "needs a valueString")
        episode_id = episode["valueString"]
    by_encounter = session is None and resource.get("encounter") is not None
    if episode_id is None and resource.get("subject") is None and not by_encounter:
        raise FhirError(
            f"extension[{EXT_EPISODE}]",
            "required",
            "the episode id extension (valueString), a subject naming the client, or an "
            "encounter registered for the session is required",
        )
    number = session.get("valueInteger") if session is not None else None
    if session is not None and (not isinstance(number, int) or isinstance(number, bool)):
        raise FhirError(f"extension[{EXT_SESSION}]", "invalid", "needs a valueInteger")
    if number is None and resource.get("encounter") is not None:
        return episode_id, None  # the session the front-end registered for the encounter
    if number is None:
        raise FhirError(
            f"extension[{EXT_SESSION}]",
            "required",
            "the session number extension (valueInteger), or an encounter registered for the "
            "session, is required",
        )
    return episode_id, number


def encounter_identifier(resource: dict[str, Any]) -> tuple[str, str] | None:
    """The ``encounter``'s identifier (system, value), as the front-end registered it for a
    session (``PUT /feedback/episodes/{id}/sessions/{n}/encounter``); None when not given."""
    encounter = resource.get("encounter")
    if encounter is None:
        return None
    identifier = encounter.get("identifier") if isinstance(encounter, dict) else None
    if (
        not isinstance(identifier, dict)
        or not isinstance(identifier.get("system"), str)
        or not isinstance(identifier.get("value"), str)
    ):
        raise FhirError(
            "encounter",
            "unknown_encounter",
            "Rapport knows an Encounter by the identifier {system, value} registered for its "
            "session (PUT /feedback/episodes/{episode_id}/sessions/{session_number}/encounter): "
            f"name it so, or send the session number extension ({EXT_SESSION})",
        )
    return identifier["system"], identifier["value"]


def parse_questionnaire_response(
    resource: object, instruments: dict[str, Instrument]
) -> ParsedResponse:
    if not isinstance(resource, dict) or resource.get("resourceType") != "QuestionnaireResponse":
        raise FhirError(
            "resourceType",
            "not_questionnaire_response",
            "the body must be a FHIR R4 QuestionnaireResponse",
        )
    if resource.get("status") not in ("completed", "amended"):
        raise FhirError(
            "status",
            "not_completed",
            "only a completed (or amended) QuestionnaireResponse can be scored",
        )
    instrument = resolve_instrument(resource.get("questionnaire"), instruments)
    episode_id, session_number = _context(resource)
    role, respondent_ref = _respondent(resource)
    answers = read_items(instrument, resource.get("item"))
    subject_kind, client_reference = _reference(resource.get("subject"))
    if resource.get("subject") is not None and (
        subject_kind not in {None, "Patient"} or client_reference is None
    ):
        raise FhirError(
            "subject", "invalid", "subject must be a Patient reference or a Patient identifier"
        )
    return ParsedResponse(
        episode_id=episode_id,
        session_number=session_number,
        respondent_role=role,
        respondent_ref=respondent_ref,
        instrument=instrument.id,
        items=answers.items,
        authored=resource.get("authored") if isinstance(resource.get("authored"), str) else None,
        amended=resource.get("status") == "amended",
        client_reference=client_reference,
        encounter=encounter_identifier(resource) if session_number is None else None,
        form_total=answers.form_total,
    )


def total_warnings(parsed: ParsedResponse, total: Decimal) -> list[dict[str, str]]:
    """A total the form computed that is not ours: reported, never silently replaced."""
    if parsed.form_total is None:
        return []
    try:
        theirs = Decimal(str(parsed.form_total))
    except InvalidOperation:
        theirs = None
    if theirs == total:
        return []
    return [
        {
            "field": "items.total",
            "rule": "form_total_differs",
            "message": f"the form's total {parsed.form_total} is not the score of the answers "
            f"({total}); the answers' score was recorded",
        }
    ]


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
