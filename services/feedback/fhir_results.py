"""FHIR R4 resources feedback gives back (scored responses as ``Observation``s are built by
``shared.fhir_observations``, which notify's webhooks share): the outcome of each entry of a
Bundle, and the ``CapabilityStatement``. Pure translation: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.feedback.fhir import CANONICAL_PREFIX, FhirError
from shared.instruments import Instrument

FHIR_VERSION = "4.0.1"


def date_range(dates: list[str]) -> tuple[datetime | None, datetime | None]:
    """The ``date`` search parameters (``ge``/``gt`` and ``le``/``lt`` prefixes) as bounds."""
    since = until = None
    for index, given in enumerate(dates):
        prefix, text = (
            (given[:2], given[2:]) if given[:2] in {"ge", "le", "gt", "lt"} else ("", given)
        )
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise FhirError(
                f"date[{index}]", "datetime", "date must be ge|le followed by an ISO 8601 date"
            ) from None
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if prefix in {"ge", "gt"}:
            since = at
        elif prefix in {"le", "lt"}:
            until = at
        else:
            raise FhirError(f"date[{index}]", "prefix", "date needs a ge or le prefix")
    return since, until


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    409: "409 Conflict",
    422: "422 Unprocessable Entity",
}


def warning_outcome(warnings: list[dict[str, str]]) -> dict[str, Any]:
    """Warnings (e.g. the form's own total disagreeing with ours) as an OperationOutcome; an
    ``information`` issue when there are none (R4 needs at least one issue)."""
    issues = [
        {
            "severity": "warning",
            "code": "business-rule",
            "diagnostics": f"{w['field']}: {w['message']}",
            "details": {"coding": [{"system": "urn:rapport:problem:rule", "code": w["rule"]}]},
            "expression": [w["field"]],
        }
        for w in warnings
    ]
    return {
        "resourceType": "OperationOutcome",
        "issue": issues
        or [{"severity": "information", "code": "informational", "diagnostics": "ok"}],
    }


def entry_response(
    status: int, outcome: dict[str, Any], location: str | None = None
) -> dict[str, Any]:
    """One entry of a batch-/transaction-response Bundle."""
    response: dict[str, Any] = {"status": STATUS_TEXT.get(status, str(status)), "outcome": outcome}
    if location is not None:
        response["location"] = location
    return {"response": response}


def all_refused(entries: list[dict[str, Any]]) -> tuple[int, dict[str, Any]] | None:
    """When every entry of a Bundle was refused with the same status, that status and one
    OperationOutcome with every entry's issues (``Bundle.entry[i]``-prefixed); else None."""
    statuses = {int(e["response"]["status"].split()[0]) for e in entries}
    if len(statuses) != 1 or min(statuses) < 400:
        return None
    issues: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        for issue in entry["response"]["outcome"].get("issue", []):
            where = [f"Bundle.entry[{index}].resource.{e}" for e in issue.get("expression", [])]
            issues.append({**issue, "expression": where or [f"Bundle.entry[{index}]"]})
    return statuses.pop(), {"resourceType": "OperationOutcome", "issue": issues}


# What the CapabilityStatement says of the context a QuestionnaireResponse may carry, and of the
# scores sent back (the routes outside FHIR that make them work are named, with their paths).
QUESTIONNAIRE_RESPONSE_CONTEXT = (
    "Context from standard elements: subject (a Patient reference or identifier, resolved "
    "through the client reference intake knows), encounter (an Encounter identifier the "
    "front-end registered for the session with PUT /feedback/episodes/{episode_id}/sessions/"
    "{session_number}/encounter), author or source (the respondent); or the "
    "urn:rapport:fhir:* extensions. Items may be nested in groups; linkIds may be LOINC item "
    "codes (with or without a leading '/') or the instrument's own ids; non-scored items are "
    "ignored and a disagreeing total is reported as a warning."
)
OBSERVATIONS_PUSHED = (
    "Searchable here, and also pushed: a site whose notify routing policy says "
    '"results": {"webhook": true} receives each scored response\'s Observations at its '
    "signed webhooks (type feedback.recorded), once per response."
)


def capability_statement(instruments: dict[str, Instrument], now: datetime) -> dict[str, Any]:
    """What the FHIR edge supports: read Questionnaires, create (and ``$validate``)
    QuestionnaireResponses alone or in a batch/transaction Bundle, search Observations; read,
    search and create the client's Goals."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.isoformat(),
        "kind": "instance",
        "software": {"name": "Rapport feedback"},
        "implementation": {"description": "Rapport feedback FHIR edge", "url": "/feedback/fhir"},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Bundles of type batch or transaction are answered entry by "
                "entry: each QuestionnaireResponse is stored in its own transaction.",
                "resource": [
                    {
                        "type": "Questionnaire",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                    },
                    {
                        "type": "QuestionnaireResponse",
                        "documentation": QUESTIONNAIRE_RESPONSE_CONTEXT,
                        "interaction": [{"code": "create"}],
                        "supportedProfile": [f"{CANONICAL_PREFIX}{i}" for i in sorted(instruments)],
                        "operation": [
                            {
                                "name": "validate",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
                            }
                        ],
                    },
                    {
                        "type": "Observation",
                        "documentation": OBSERVATIONS_PUSHED,
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            {
                                "name": "episode",
                                "type": "token",
                                "documentation": "the episode id (urn:rapport:fhir:episode-id)",
                            },
                            {
                                "name": "date",
                                "type": "date",
                                "documentation": "when answered: ge<date> and/or le<date>",
                            },
                            {"name": "_count", "type": "number"},
                        ],
                    },
                    {
                        "type": "Goal",
                        "interaction": [
                            {"code": "read"},
                            {"code": "search-type"},
                            {"code": "create"},
                        ],
                        "searchParam": [
                            {
                                "name": "episode",
                                "type": "token",
                                "documentation": "the episode id (urn:rapport:fhir:episode-id)",
                            },
                            {"name": "_count", "type": "number"},
                        ],
                    },
                ],
                "interaction": [{"code": "batch"}, {"code": "transaction"}],
            }
        ],
    }
