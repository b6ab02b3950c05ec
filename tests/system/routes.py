"""Every HTTP operation of the four services, and how a test exercises it against one site's
resources: who may call it, whether it touches client-level data (and must be audited), and a
request that the right member of staff at that site gets an answer to.

The isolation, audit and mass-assignment tests enumerate the operations from the running app
(its OpenAPI document) and look each one up here: a new route that is not in this table fails
them until someone decides how it is scoped."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI

from shared.problems import is_fhir_path
from tests.system.world import HIGH_SRS, Site, World, intake_body, therapist_body
from tests.unit.feedback.test_feedback_api import fhir_phq9

Scope = Literal[
    "site",  # site-scoped staff data: 403/404 for other sites and roles
    "client",  # client-level data: as "site", plus one audit record per staff request
    "deployment",  # the deployment's own configuration, the same for every member of staff
    "link",  # a client's one-time feedback link: no staff token, the link is the credential
    "operations",  # health, readiness, metrics: no token
]

MANAGE_EPISODES = ("intake_coordinator", "clinical_lead", "site_admin")
READ_EPISODES = ("intake_coordinator", "clinical_lead", "supervisor", "therapist")
MATCHING = ("intake_coordinator", "site_admin")
RECORDERS = ("therapist", "supervisor", "clinical_lead", "intake_coordinator")
READERS = ("therapist", "supervisor", "clinical_lead")
CLINICAL = ("therapist", "supervisor", "clinical_lead")
AGGREGATES = ("supervisor", "clinical_lead", "data_analyst", "site_admin")
LOG_READERS = ("site_admin", "clinical_lead", "supervisor")
UNDELIVERED_READERS = ("clinical_lead", "site_admin")
CONTACT_EDITORS = ("site_admin", "intake_coordinator", "therapist", "clinical_lead")
ADMIN = ("site_admin",)
EVERY_ROLE = (
    "clinical_lead",
    "data_analyst",
    "intake_coordinator",
    "site_admin",
    "supervisor",
    "therapist",
)


@dataclass(frozen=True)
class Call:
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"

    def content(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()


@dataclass(frozen=True)
class Operation:
    scope: Scope
    roles: tuple[str, ...]  # who may call it at their own site; roles[0] is the control
    call: Callable[[World, Site], Call]
    # Path parameters that name a resource (a guessed value must get 404, not a leak).
    ids: tuple[str, ...] = ()

    @property
    def audited(self) -> bool:
        return self.scope == "client"


def _at(site: Site) -> dict[str, str]:
    return {"site_id": site.id}


def _fields(therapist_id: str, site: str) -> dict[str, Any]:
    body = therapist_body(therapist_id, site)
    del body["id"]
    return body


def _policy(world: World, site: Site) -> dict[str, Any]:
    # The checked-in default, which every site may store as its own.
    from services.notify.policy import RoutingPolicy

    return RoutingPolicy().model_dump(mode="json")


def _fhir(site: Site) -> Call:
    return Call(
        "/feedback/fhir/QuestionnaireResponse",
        body=fhir_phq9(site.episode_id, 5),
        content_type="application/fhir+json",
    )


OPERATIONS: dict[tuple[str, str], Operation] = {
    # -- intake ----------------------------------------------------------------------------
    ("POST", "/intake/episodes"): Operation(
        "client",
        MANAGE_EPISODES,
        lambda w, s: Call(
            "/intake/episodes",
            body={
                "site_id": s.id,
                "therapist_id": s.therapist,
                "client_reference": f"MRN-{uuid.uuid4().hex[:8]}",
            },
        ),
    ),
    ("GET", "/intake/episodes/{episode_id}"): Operation(
        "client",
        READ_EPISODES,
        lambda w, s: Call(f"/intake/episodes/{s.episode_id}"),
        ("episode_id",),
    ),
    ("POST", "/intake/episodes/{episode_id}/close"): Operation(
        "client",
        (*MANAGE_EPISODES, "therapist"),
        lambda w, s: Call(
            f"/intake/episodes/{s.direct_episode_id}/close", body={"reason": "completed"}
        ),
        ("episode_id",),
    ),
    ("POST", "/intake/episodes/{episode_id}/closing"): Operation(
        "client",
        (*MANAGE_EPISODES, "therapist"),
        lambda w, s: Call(f"/intake/episodes/{s.direct_episode_id}/closing"),
        ("episode_id",),
    ),
    ("POST", "/intake/erasures"): Operation(
        "client",
        ("site_admin", "clinical_lead"),
        lambda w, s: Call(
            "/intake/erasures",
            body={"site_id": s.id, "client_reference": s.erasable_reference},
        ),
    ),
    ("POST", "/intake/therapists"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(
            "/intake/therapists", body=therapist_body(f"th-{uuid.uuid4().hex[:6]}", s.id)
        ),
    ),
    ("PUT", "/intake/therapists/{therapist_id}"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(
            f"/intake/therapists/{s.other_therapist}", body=_fields(s.other_therapist, s.id)
        ),
        ("therapist_id",),
    ),
    ("POST", "/intake/therapists/{therapist_id}/deactivate"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(f"/intake/therapists/{s.other_therapist}/deactivate"),
        ("therapist_id",),
    ),
    ("GET", "/intake/therapists"): Operation(
        "site",
        ("site_admin", "intake_coordinator", "clinical_lead", "supervisor"),
        lambda w, s: Call("/intake/therapists", params=_at(s)),
    ),
    ("POST", "/intake/therapists/import"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(
            "/intake/therapists/import", body=[therapist_body(s.other_therapist, s.id)]
        ),
    ),
    ("POST", "/intake/intakes"): Operation(
        "client",
        MATCHING,
        lambda w, s: Call("/intake/intakes", body=intake_body(s.id, f"MRN-{uuid.uuid4().hex[:8]}")),
    ),
    ("POST", "/intake/intakes/{intake_id}/propose"): Operation(
        "client",
        MATCHING,
        lambda w, s: Call(f"/intake/intakes/{s.open_intake_id}/propose"),
        ("intake_id",),
    ),
    ("GET", "/intake/matches/{match_id}"): Operation(
        "client",
        ("intake_coordinator", "site_admin", "clinical_lead"),
        lambda w, s: Call(f"/intake/matches/{s.match_id}"),
        ("match_id",),
    ),
    ("POST", "/intake/matches/{match_id}/confirm"): Operation(
        "client",
        MATCHING,
        lambda w, s: Call(
            f"/intake/matches/{s.match_id}/confirm", body={"therapist_id": s.therapist}
        ),
        ("match_id",),
    ),
    ("POST", "/intake/matches/{match_id}/decline"): Operation(
        "client",
        MATCHING,
        lambda w, s: Call(
            f"/intake/matches/{s.open_match_id}/decline",
            body={"reason_code": "client_preference"},
        ),
        ("match_id",),
    ),
    ("POST", "/intake/episodes/{episode_id}/rematch"): Operation(
        "client",
        (*MATCHING, "clinical_lead"),
        lambda w, s: Call(f"/intake/episodes/{s.episode_id}/rematch"),
        ("episode_id",),
    ),
    ("POST", "/intake/sites/{site_id}/waiting-list/assign"): Operation(
        "client", MATCHING, lambda w, s: Call(f"/intake/sites/{s.id}/waiting-list/assign")
    ),
    ("POST", "/intake/sites/{site_id}/waiting-list/import"): Operation(
        "client",
        MATCHING,
        lambda w, s: Call(
            f"/intake/sites/{s.id}/waiting-list/import",
            body=[intake_body(s.id, f"MRN-{uuid.uuid4().hex[:8]}")],
        ),
    ),
    # -- feedback --------------------------------------------------------------------------
    ("GET", "/feedback/instruments"): Operation(
        "deployment", EVERY_ROLE, lambda w, s: Call("/feedback/instruments")
    ),
    ("GET", "/feedback/fhir/Questionnaire"): Operation(
        "deployment", EVERY_ROLE, lambda w, s: Call("/feedback/fhir/Questionnaire")
    ),
    ("GET", "/feedback/fhir/Questionnaire/{instrument_id}"): Operation(
        "deployment", EVERY_ROLE, lambda w, s: Call("/feedback/fhir/Questionnaire/srs")
    ),
    ("POST", "/feedback/responses"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            "/feedback/responses",
            body={
                "episode_id": s.episode_id,
                "session_number": 4,
                "respondent_role": "client",
                "instrument": "srs",
                "items": HIGH_SRS,
            },
        ),
    ),
    ("POST", "/feedback/fhir/QuestionnaireResponse"): Operation(
        "client", RECORDERS, lambda w, s: _fhir(s)
    ),
    ("POST", "/feedback/fhir/QuestionnaireResponse/$validate"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            "/feedback/fhir/QuestionnaireResponse/$validate",
            body=fhir_phq9(s.episode_id, 6),
            content_type="application/fhir+json",
        ),
    ),
    ("POST", "/feedback/fhir"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            "/feedback/fhir",
            body={
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"resource": fhir_phq9(s.episode_id, 7)}],
            },
            content_type="application/fhir+json",
        ),
    ),
    ("GET", "/feedback/fhir/Observation"): Operation(
        "client",
        READERS,
        lambda w, s: Call("/feedback/fhir/Observation", params={"episode": s.episode_id}),
    ),
    ("GET", "/feedback/fhir/metadata"): Operation(
        "deployment", EVERY_ROLE, lambda w, s: Call("/feedback/fhir/metadata")
    ),
    ("GET", "/feedback/responses/{response_id}"): Operation(
        "client",
        READERS,
        lambda w, s: Call(f"/feedback/responses/{s.response_id}"),
        ("response_id",),
    ),
    # The same answers again: amending changes no alert of the world's episode.
    ("POST", "/feedback/responses/{response_id}/amend"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(f"/feedback/responses/{s.response_id}/amend", body={"items": HIGH_SRS}),
        ("response_id",),
    ),
    ("POST", "/feedback/sessions"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            "/feedback/sessions",
            body={
                "episode_id": s.episode_id,
                "session_number": 3,
                "at": datetime.now(UTC).isoformat(),
            },
        ),
    ),
    # Session facts (issue 16): sessions no other operation answers, the same fact each call.
    ("POST", "/feedback/episodes/{episode_id}/sessions/{session_number}/scheduled"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/episodes/{s.episode_id}/sessions/900/scheduled",
            body={"scheduled_for": "2026-12-08T17:00:00+01:00"},
        ),
        ("episode_id",),
    ),
    ("POST", "/feedback/episodes/{episode_id}/sessions/{session_number}/attended"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/episodes/{s.episode_id}/sessions/901/attended",
            body={"at": "2026-12-08T17:00:00+01:00"},
        ),
        ("episode_id",),
    ),
    ("POST", "/feedback/episodes/{episode_id}/sessions/{session_number}/missed"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/episodes/{s.episode_id}/sessions/902/missed",
            body={"at": "2026-12-08T17:00:00+01:00"},
        ),
        ("episode_id",),
    ),
    ("POST", "/feedback/episodes/{episode_id}/sessions/{session_number}/cancelled"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/episodes/{s.episode_id}/sessions/903/cancelled",
            body={"by": "clinic", "at": "2026-12-08T17:00:00+01:00"},
        ),
        ("episode_id",),
    ),
    ("GET", "/feedback/episodes/{episode_id}/sessions"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(f"/feedback/episodes/{s.episode_id}/sessions"),
        ("episode_id",),
    ),
    ("POST", "/feedback/sites/{site_id}/session-diary"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/sites/{s.id}/session-diary",
            body=[
                {
                    "episode_id": s.episode_id,
                    "session_number": 904,
                    "status": "attended",
                    "at": "2026-12-08T17:00:00+01:00",
                }
            ],
        ),
    ),
    ("GET", "/feedback/r/{token}"): Operation(
        "link", (), lambda w, s: Call(f"/feedback/r/{s.feedback_link}")
    ),
    ("POST", "/feedback/r/{token}"): Operation(
        "link",
        (),
        lambda w, s: Call(
            f"/feedback/r/{s.feedback_link}",
            body={"responses": [{"instrument": "srs", "items": HIGH_SRS}]},
        ),
    ),
    ("GET", "/feedback/episodes/{episode_id}/responses"): Operation(
        "client",
        READERS,
        lambda w, s: Call(f"/feedback/episodes/{s.episode_id}/responses"),
        ("episode_id",),
    ),
    ("POST", "/feedback/episodes/{episode_id}/goals"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(f"/feedback/episodes/{s.episode_id}/goals", body={"text": "a goal"}),
        ("episode_id",),
    ),
    ("PATCH", "/feedback/episodes/{episode_id}/goals/{goal_id}"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/episodes/{s.episode_id}/goals/{s.goal_id}", body={"status": "active"}
        ),
        ("episode_id", "goal_id"),
    ),
    ("PUT", "/feedback/episodes/{episode_id}/sessions/{session_number}/encounter"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/episodes/{s.episode_id}/sessions/1/encounter",
            body={"system": "urn:ehr:encounter", "value": f"enc-{s.episode_id}"},
        ),
        ("episode_id",),
    ),
    ("GET", "/feedback/episodes/{episode_id}/goals"): Operation(
        "client",
        READERS,
        lambda w, s: Call(f"/feedback/episodes/{s.episode_id}/goals"),
        ("episode_id",),
    ),
    ("GET", "/feedback/fhir/Goal"): Operation(
        "client",
        READERS,
        lambda w, s: Call("/feedback/fhir/Goal", params={"episode": s.episode_id}),
    ),
    ("GET", "/feedback/fhir/Goal/{goal_id}"): Operation(
        "client", READERS, lambda w, s: Call(f"/feedback/fhir/Goal/{s.goal_id}"), ("goal_id",)
    ),
    ("POST", "/feedback/fhir/Goal"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            "/feedback/fhir/Goal",
            body={
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "a goal"},
                "extension": [{"url": "urn:rapport:fhir:episode-id", "valueString": s.episode_id}],
            },
            content_type="application/fhir+json",
        ),
    ),
    ("POST", "/feedback/episodes/{episode_id}/consents"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(
            f"/feedback/episodes/{s.episode_id}/consents",
            body={"scope": "aggregates", "granted": True},
        ),
        ("episode_id",),
    ),
    ("POST", "/intake/episodes/{episode_id}/members"): Operation(
        "client",
        ("intake_coordinator", "clinical_lead", "site_admin", "therapist"),
        lambda w, s: Call(
            f"/intake/episodes/{s.episode_id}/members",
            body={"reference": f"partner of {s.id}", "role": "partner"},
        ),
        ("episode_id",),
    ),
    ("DELETE", "/intake/episodes/{episode_id}/members/{respondent}"): Operation(
        "client",
        ("intake_coordinator", "clinical_lead", "site_admin", "therapist"),
        lambda w, s: Call(f"/intake/episodes/{s.episode_id}/members/p1_{'e' * 32}"),
        ("episode_id",),
    ),
    ("GET", "/feedback/episodes/{episode_id}/consents"): Operation(
        "client",
        RECORDERS,
        lambda w, s: Call(f"/feedback/episodes/{s.episode_id}/consents"),
        ("episode_id",),
    ),
    ("PUT", "/feedback/sites/{site_id}/notice"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(
            f"/feedback/sites/{s.id}/notice",
            body={
                "text": f"The notice of {s.id}",
                "risk_contacts": ["therapist"],
                "risk_within_minutes": 15,
            },
        ),
    ),
    ("GET", "/feedback/sites/{site_id}/notice"): Operation(
        "site", EVERY_ROLE, lambda w, s: Call(f"/feedback/sites/{s.id}/notice")
    ),
    # -- analytics -------------------------------------------------------------------------
    ("GET", "/analytics/alerts"): Operation(
        "client", CLINICAL, lambda w, s: Call("/analytics/alerts", params=_at(s))
    ),
    ("POST", "/analytics/alerts/{alert_id}/acknowledge"): Operation(
        "client",
        CLINICAL,
        lambda w, s: Call(f"/analytics/alerts/{s.risk_alert_id}/acknowledge"),
        ("alert_id",),
    ),
    ("POST", "/analytics/alerts/{alert_id}/actions"): Operation(
        "client",
        CLINICAL,
        lambda w, s: Call(
            f"/analytics/alerts/{s.risk_alert_id}/actions", body={"code": "safety_plan"}
        ),
        ("alert_id",),
    ),
    ("POST", "/analytics/alerts/{alert_id}/close"): Operation(
        "client",
        CLINICAL,
        lambda w, s: Call(
            f"/analytics/alerts/{s.risk_alert_id}/close", body={"reason": "addressed"}
        ),
        ("alert_id",),
    ),
    ("GET", "/analytics/episodes/{episode_id}/timeline"): Operation(
        "client",
        CLINICAL,
        lambda w, s: Call(f"/analytics/episodes/{s.episode_id}/timeline"),
        ("episode_id",),
    ),
    ("GET", "/analytics/episodes/{episode_id}/chart.svg"): Operation(
        "client",
        CLINICAL,
        lambda w, s: Call(f"/analytics/episodes/{s.episode_id}/chart.svg"),
        ("episode_id",),
    ),
    ("GET", "/analytics/therapists/{therapist_id}/effectiveness"): Operation(
        "site",
        AGGREGATES,
        lambda w, s: Call(f"/analytics/therapists/{s.therapist}/effectiveness", params=_at(s)),
    ),
    ("GET", "/analytics/sites/{site_id}/summary"): Operation(
        "site", AGGREGATES, lambda w, s: Call(f"/analytics/sites/{s.id}/summary")
    ),
    ("GET", "/analytics/sites/{site_id}/follow-up"): Operation(
        "site", AGGREGATES, lambda w, s: Call(f"/analytics/sites/{s.id}/follow-up")
    ),
    ("GET", "/analytics/sites/{site_id}/report"): Operation(
        "site",
        ("supervisor", "clinical_lead"),
        lambda w, s: Call(f"/analytics/sites/{s.id}/report"),
    ),
    # -- notify ----------------------------------------------------------------------------
    ("POST", "/notify/webhooks"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call("/notify/webhooks", body={"site_id": s.id, "url": s.webhook_url}),
    ),
    ("GET", "/notify/webhooks"): Operation(
        "site", ADMIN, lambda w, s: Call("/notify/webhooks", params=_at(s))
    ),
    ("POST", "/notify/webhooks/{webhook_id}/rotate-secret"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(f"/notify/webhooks/{s.webhook_id}/rotate-secret"),
        ("webhook_id",),
    ),
    ("POST", "/notify/webhooks/{webhook_id}/enable"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(f"/notify/webhooks/{s.webhook_id}/enable"),
        ("webhook_id",),
    ),
    ("GET", "/notify/deliveries"): Operation(
        "client", LOG_READERS, lambda w, s: Call("/notify/deliveries", params=_at(s))
    ),
    ("GET", "/notify/deliveries/{delivery_id}"): Operation(
        "client",
        LOG_READERS,
        lambda w, s: Call(f"/notify/deliveries/{s.delivery_id}"),
        ("delivery_id",),
    ),
    ("POST", "/notify/deliveries/{delivery_id}/ack"): Operation(
        "client",
        ("site_admin", "supervisor", "clinical_lead", "intake_coordinator", "therapist"),
        lambda w, s: Call(f"/notify/deliveries/{s.delivery_id}/ack"),
        ("delivery_id",),
    ),
    ("POST", "/notify/deliveries/{delivery_id}/retry"): Operation(
        "client",
        ADMIN,
        lambda w, s: Call(f"/notify/deliveries/{s.delivery_id}/retry"),
        ("delivery_id",),
    ),
    ("GET", "/notify/policies/{site_id}"): Operation(
        "site", LOG_READERS, lambda w, s: Call(f"/notify/policies/{s.id}")
    ),
    ("PUT", "/notify/policies/{site_id}"): Operation(
        "site", ADMIN, lambda w, s: Call(f"/notify/policies/{s.id}", body=_policy(w, s))
    ),
    ("PUT", "/notify/contacts/{site_id}/{role}/{staff_id}"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(
            f"/notify/contacts/{s.id}/supervisor/sup-{s.id}",
            body={"email": f"sup@{s.id}.test"},
        ),
    ),
    ("GET", "/notify/contacts"): Operation(
        "site", ADMIN, lambda w, s: Call("/notify/contacts", params=_at(s))
    ),
    ("PUT", "/notify/client-contacts/{site_id}/{respondent}"): Operation(
        "client",
        CONTACT_EDITORS,
        lambda w, s: Call(
            f"/notify/client-contacts/{s.id}/{s.client}",
            body={"channel": "email", "consent": True, "email": f"client@{s.id}.test"},
        ),
    ),
    ("GET", "/notify/client-contacts/{site_id}/{respondent}"): Operation(
        "client", CONTACT_EDITORS, lambda w, s: Call(f"/notify/client-contacts/{s.id}/{s.client}")
    ),
    ("GET", "/notify/undelivered"): Operation(
        "client", UNDELIVERED_READERS, lambda w, s: Call("/notify/undelivered", params=_at(s))
    ),
    ("PUT", "/notify/fallbacks/{site_id}"): Operation(
        "site",
        ADMIN,
        lambda w, s: Call(f"/notify/fallbacks/{s.id}", body={"email": f"on-call@{s.id}.test"}),
    ),
    ("GET", "/notify/fallbacks/{site_id}"): Operation(
        "site", UNDELIVERED_READERS, lambda w, s: Call(f"/notify/fallbacks/{s.id}")
    ),
    # Deletions last: the controls of the routes above need what they delete.
    ("DELETE", "/notify/fallbacks/{site_id}"): Operation(
        "site", ADMIN, lambda w, s: Call(f"/notify/fallbacks/{s.id}")
    ),
    ("DELETE", "/notify/policies/{site_id}"): Operation(
        "site", ADMIN, lambda w, s: Call(f"/notify/policies/{s.id}")
    ),
    ("DELETE", "/notify/contacts/{site_id}/{role}/{staff_id}"): Operation(
        "site", ADMIN, lambda w, s: Call(f"/notify/contacts/{s.id}/supervisor/sup-{s.id}")
    ),
    ("DELETE", "/notify/client-contacts/{site_id}/{respondent}"): Operation(
        "client", CONTACT_EDITORS, lambda w, s: Call(f"/notify/client-contacts/{s.id}/{s.client}")
    ),
    # -- operations ------------------------------------------------------------------------
    ("GET", "/healthz"): Operation("operations", (), lambda w, s: Call("/healthz")),
    ("GET", "/readyz"): Operation("operations", (), lambda w, s: Call("/readyz")),
    ("GET", "/metrics"): Operation("operations", (), lambda w, s: Call("/metrics")),
}

STAFF_SCOPES = ("site", "client", "deployment")


def error_media_type(path: str) -> str:
    """What an error is answered as: problem+json, or an OperationOutcome on FHIR routes."""
    return "application/fhir+json" if is_fhir_path(path) else "application/problem+json"


def app_operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every operation the app serves, from its OpenAPI document (which every route is in)."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


def ordered(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The table's order (deletions last), for the keys given."""
    wanted = set(keys)
    return [key for key in OPERATIONS if key in wanted]


async def send(world: World, method: str, call: Call, headers: dict[str, str] | None = None) -> Any:
    all_headers = dict(headers or {})
    if call.body is not None:
        all_headers["content-type"] = call.content_type
    return await world.http.request(
        method, call.path, params=call.params, content=call.content(), headers=all_headers
    )
