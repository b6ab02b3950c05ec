"""One error shape across all four services (issue 23, item 7): dotted field paths everywhere
(body, query, header), 415 for a wrong content type on every route that takes a body (FHIR
routes answer an OperationOutcome), one error for a wrongly typed value, unknown codes answered
with the valid codes, and the code lists as enums in the OpenAPI so that an unknown filter value
gets 422 like any other bad query value. The routes are read from the running app's OpenAPI
document, so a route added later is covered too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import services
from services.analytics.domain import KINDS
from shared.auth import mint_token
from shared.contracts import ALERT_KINDS
from shared.host import Host
from shared.problems import is_fhir_path
from shared.settings import Settings, load_settings


def _settings(folder: Path) -> Settings:
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/{{service}}.db", redis_url="memory://"
    )


def _spec() -> dict[str, Any]:
    folder = Path("/nonexistent-never-opened")  # building the app does not open the database
    host = Host(_settings(folder), services.definitions(), embedded=True)
    spec: dict[str, Any] = host.http_app().openapi()
    return spec


SPEC = _spec()


def _schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter or property schema without its ``null`` alternative, references resolved."""
    if "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
    return schema


def _filled(path: str) -> str:
    return path.replace("{", "x-").replace("}", "")


BODY_ROUTES = sorted(
    (method.upper(), path)
    for path, operations in SPEC["paths"].items()
    for method, operation in operations.items()
    if "requestBody" in operation
)
ENUM_FILTERS = sorted(
    (path, parameter["name"], tuple(_schema(parameter["schema"])["enum"]))
    for path, operations in SPEC["paths"].items()
    for method, operation in operations.items()
    if method == "get"
    for parameter in operation.get("parameters", [])
    if parameter["in"] == "query" and "enum" in _schema(parameter["schema"])
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _settings(tmp_path_factory.mktemp("error-shape"))


@pytest.fixture(scope="module")
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One embedded host for the module: every test here is refused before anything is
    stored, so none sees another's data."""
    host = Host(settings, services.definitions(), embedded=True)
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            yield client
    finally:
        await host.stop()


def auth(settings: Settings, role: str = "site_admin") -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(settings, "th-1", role, ["site-a"])}


def problem_errors(response: httpx.Response, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


# --- 415 on every route that takes a body -----------------------------------------------------


def test_the_body_routes_of_all_four_services_are_covered() -> None:
    for prefix in ("/intake/", "/feedback/", "/analytics/", "/notify/", "/feedback/fhir/"):
        if prefix == "/analytics/":
            continue  # analytics takes no body today
        assert any(path.startswith(prefix) for _, path in BODY_ROUTES), prefix
    assert len(BODY_ROUTES) >= 15


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_wrong_content_type_gets_415_naming_the_accepted_types(
    http: httpx.AsyncClient, settings: Settings, method: str, path: str
) -> None:
    answered = await http.request(
        method,
        _filled(path),
        headers={**auth(settings), "content-type": "text/plain"},
        content=b'{"site_id": "site-a"}',
    )
    assert answered.status_code == 415, answered.text
    declared = list(SPEC["paths"][path][method.lower()]["requestBody"]["content"])
    if is_fhir_path(path):
        assert answered.headers["content-type"] == "application/fhir+json"
        [issue] = answered.json()["issue"]
        assert (issue["code"], issue["expression"]) == ("not-supported", ["content-type"])
        assert issue["details"]["coding"][0]["code"] == "media_type"
        return
    [error] = problem_errors(answered, 415)
    assert (error["field"], error["rule"]) == ("content-type", "media_type")
    assert set(declared) <= set(error["valid"])


async def test_an_empty_body_is_left_to_validation_not_415(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    answered = await http.post(
        "/intake/therapists", headers={**auth(settings), "content-type": "text/plain"}
    )
    [error] = problem_errors(answered, 422)
    assert error["rule"] == "missing"


async def test_fhir_routes_answer_every_error_as_an_operation_outcome(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    missing = await http.get(
        "/feedback/fhir/Questionnaire/astrology", headers=auth(settings, "therapist")
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/fhir+json"
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert missing.json()["issue"][0]["code"] == "not-found"
    responses = SPEC["paths"]["/feedback/fhir/QuestionnaireResponse"]["post"]["responses"]
    assert list(responses["415"]["content"]) == ["application/fhir+json"]
    assert list(responses["422"]["content"]) == ["application/fhir+json"]


# --- enums: in the OpenAPI, and unknown values refused naming the valid ones --------------------


def test_the_known_filters_are_enums_in_the_openapi() -> None:
    filters = {(path, name): values for path, name, values in ENUM_FILTERS}
    assert set(filters[("/analytics/alerts", "kind")]) == set(ALERT_KINDS)
    assert "alert" in filters[("/notify/deliveries", "kind")]
    assert ("/analytics/alerts", "status") in filters
    assert ("/notify/deliveries", "status") in filters


@pytest.mark.parametrize(("path", "name", "values"), ENUM_FILTERS)
async def test_an_unknown_filter_value_gets_422_naming_the_param_and_the_valid_values(
    http: httpx.AsyncClient, settings: Settings, path: str, name: str, values: tuple[str, ...]
) -> None:
    answered = await http.get(
        _filled(path),
        params={"site_id": "site-a", name: "ruptures"},
        headers=auth(settings, "clinical_lead"),
    )
    [error] = problem_errors(answered, 422)
    assert (error["field"], error["rule"]) == (name, "unknown_code")
    assert error["valid"] == sorted(values) or set(error["valid"]) == set(values)
    assert "'ruptures'" in error["message"]


@pytest.mark.parametrize(
    ("schema", "field", "expected"),
    [
        ("TherapistIn", "languages", "en"),
        ("TherapistIn", "scopes", "couples"),
        ("TherapistIn", "domains", "depression"),
        ("TherapistIn", "modalities", "cbt"),
        ("TherapistIn", "gender", "non_binary"),
        ("IntakeIn", "languages", "en"),
        ("DomainIn", "code", "depression"),
        ("EpisodeIn", "domains", "depression"),
        ("DeclineIn", "reason_code", "client_preference"),
        ("GenderPreferenceIn", "codes", "woman"),
        ("FormatPreferenceIn", "codes", "telehealth"),
        ("RoutingRule", "kinds", "rupture"),
        ("RoutingRule", "to", "clinical_lead"),
        ("RoutingRule", "channels", "email"),
        ("ResponseIn", "respondent_role", "partner"),
    ],
)
def test_code_lists_are_enums_in_the_openapi(schema: str, field: str, expected: str) -> None:
    properties = SPEC["components"]["schemas"][schema]["properties"]
    prop = _schema(properties[field])
    if prop.get("type") == "array":
        prop = _schema(prop["items"])
    assert expected in prop["enum"], prop


def test_analytics_and_the_event_contract_agree_on_the_alert_kinds() -> None:
    assert tuple(KINDS) == ALERT_KINDS


async def test_an_unknown_code_in_a_body_is_answered_with_the_valid_codes(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    answered = await http.post(
        "/intake/matches/m-1/decline",
        headers=auth(settings, "intake_coordinator"),
        json={"reason_code": "too_expensive"},
    )
    [error] = problem_errors(answered, 422)
    assert (error["field"], error["rule"]) == ("reason_code", "unknown_code")
    assert "client_preference" in error["valid"] and "other" in error["valid"]
    assert error["message"].startswith("unknown decline reason 'too_expensive'; valid: ")


# --- one dotted field path, one error per wrongly typed value -----------------------------------


async def test_field_paths_are_dotted_in_bodies_queries_and_headers(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    slot = {"day": "monday", "start_minute": 540, "end_minute": 600}
    body = {"id": "th-1", "sites": ["site-a"], "languages": ["en"], "capacity": 1}
    nested = await http.post(
        "/intake/therapists", headers=auth(settings), json={**body, "availability": [slot]}
    )
    assert [e["field"] for e in problem_errors(nested, 422)] == ["availability.0.day"]
    engine = await http.post(
        "/intake/therapists",
        headers=auth(settings),
        json={**body, "availability": [{"day": 1, "start_minute": 600, "end_minute": 540}]},
    )
    assert [e["field"] for e in problem_errors(engine, 422)] == ["availability.0.end_minute"]
    query = await http.get(
        "/intake/therapists", params={"site_id": "site-a", "limit": 0}, headers=auth(settings)
    )
    assert [e["field"] for e in problem_errors(query, 422)] == ["limit"]
    header = await http.post(
        "/feedback/responses",
        headers={**auth(settings, "therapist"), "Idempotency-Key": "x" * 500},
        json={},
    )
    assert "idempotency-key" in [e["field"] for e in problem_errors(header, 422)]


async def test_a_wrongly_typed_item_gets_one_error_naming_the_accepted_types(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    answered = await http.post(
        "/feedback/responses",
        headers=auth(settings, "therapist"),
        json={
            "episode_id": "e-1",
            "session_number": 1,
            "respondent_role": "client",
            "instrument": "srs",
            "items": {"relationship": 9, "goals": "high", "approach": 9, "overall": 9},
        },
    )
    [error] = problem_errors(answered, 422)
    assert error == {
        "field": "items.goals",
        "rule": "wrong_type",
        "message": "must be a number or an integer",
    }
    assert answered.json()["detail"] == "items.goals: must be a number or an integer"
