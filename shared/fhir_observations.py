"""Scores as FHIR R4 ``Observation``s: the shapes and codes only (LOINC codes come from the
instrument definition), shared by feedback (``GET /feedback/fhir/Observation``) and notify (the
``feedback_results`` webhook), so both give an EHR the same resources. Pure: no I/O, no
scoring (the caller gives the scores it already has)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.instruments import Instrument

LOINC = "http://loinc.org"
EXT_EPISODE = "urn:rapport:fhir:episode-id"
EXT_SESSION = "urn:rapport:fhir:session-number"
SCORE_SYSTEM = "urn:rapport:fhir:score"
BAND_SYSTEM = "urn:rapport:fhir:band"
PSEUDONYM_SYSTEM = "urn:rapport:fhir:client-pseudonym"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class ScoredResponse:
    """What the Observations say of one scored response (pseudonymous: ids, codes, numbers)."""

    response_id: str
    episode_id: str
    session_number: int
    answered_at: datetime
    total: Decimal
    in_concern_or_clinical_range: bool
    subscales: Mapping[str, Decimal] = field(default_factory=dict)
    band: str | None = None
    amended: bool = False
    client: str | None = None  # the client's pseudonym (the subject), when known


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _code(instrument: Instrument, score: str, text: str) -> dict[str, Any]:
    coding = [{"system": SCORE_SYSTEM, "code": f"{instrument.id}/{score}", "display": text}]
    loinc = instrument.loinc.get("total")
    if score == "total" and isinstance(loinc, str):
        coding.insert(0, {"system": LOINC, "code": loinc, "display": text})
    return {"coding": coding, "text": text}


def _interpretation(instrument: Instrument, scored: ScoredResponse) -> list[dict[str, Any]]:
    """The band (the instrument's own code) and the clinical range: A (abnormal) when in the
    clinical (or concern) range, N otherwise."""
    found: list[dict[str, Any]] = []
    if scored.band is not None:
        found.append({"coding": [{"system": BAND_SYSTEM, "code": scored.band}]})
    if instrument.clinical is not None or instrument.concern is not None:
        clinical = scored.in_concern_or_clinical_range
        found.append(
            {
                "coding": [
                    {
                        "system": INTERPRETATION,
                        "code": "A" if clinical else "N",
                        "display": "Abnormal" if clinical else "Normal",
                    }
                ],
                "text": "in the clinical range" if clinical else "not in the clinical range",
            }
        )
    return found


def _observation(
    response_id: str, score: str, value: Decimal, common: dict[str, Any], code: dict[str, Any]
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{response_id}-{score}".replace("_", "-")[:64],
        **common,
        "code": code,
        "valueQuantity": {
            "value": _number(value),
            "unit": "{score}",
            "system": UCUM,
            "code": "{score}",
        },
    }


def observations(instrument: Instrument, scored: ScoredResponse) -> list[dict[str, Any]]:
    """One scored response as Observations: its total (interpreted: band and clinical range),
    then each subscale; each ``derivedFrom`` the QuestionnaireResponse. The subject is the
    client's pseudonym (Rapport never holds the clinic's client reference)."""
    answered_at = scored.answered_at
    common: dict[str, Any] = {
        "extension": [
            {"url": EXT_EPISODE, "valueString": scored.episode_id},
            {"url": EXT_SESSION, "valueInteger": scored.session_number},
        ],
        "status": "amended" if scored.amended else "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "survey", "display": "Survey"}]}],
        **(
            {"subject": {"identifier": {"system": PSEUDONYM_SYSTEM, "value": scored.client}}}
            if scored.client is not None
            else {}
        ),
        "effectiveDateTime": (
            answered_at if answered_at.tzinfo else answered_at.replace(tzinfo=UTC)
        ).isoformat(),
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{scored.response_id}"}],
    }
    rid = scored.response_id
    total = _observation(
        rid,
        "total",
        scored.total,
        common,
        _code(instrument, "total", f"{instrument.title}: total score"),
    )
    interpretation = _interpretation(instrument, scored)
    if interpretation:
        total["interpretation"] = interpretation
    found = [total]
    for name, value in sorted(scored.subscales.items()):
        text = f"{instrument.title}: {name} subscale"
        found.append(_observation(rid, name, value, common, _code(instrument, name, text)))
    return found
