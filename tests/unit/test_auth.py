"""Staff authentication (shared/auth.py): bearer JWTs carrying sub, role and sites; 401 for
anything that is not a valid token of ours, 403 naming the rule for site and role scope."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from shared.auth import ALGORITHM, CurrentStaff, Staff, mint_token, verify_token
from shared.problems import Problem, install_problem_handlers
from shared.settings import Settings, load_settings

SECRET = "unit-test-jwt-secret-" + "k" * 44  # 64 bytes: long enough for HS512 too


@pytest.fixture
def settings() -> Settings:
    return load_settings(jwt_secret=SECRET, jwt_audience="rapport", jwt_issuer="rapport-test")


def claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "sub": "th-1",
        "role": "therapist",
        "sites": ["site-a"],
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def signed(settings: Settings, secret: str = SECRET, **changes: Any) -> str:
    return jwt.encode(claims(settings, **changes), secret, algorithm=ALGORITHM)


def unauthorised(settings: Settings, token: str) -> Problem:
    with pytest.raises(Problem) as raised:
        verify_token(settings, token)
    assert raised.value.status == 401
    assert raised.value.headers == {"WWW-Authenticate": "Bearer"}
    return raised.value


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# -- mint and verify ----------------------------------------------------------------------------


def test_a_minted_token_verifies_to_its_subject_role_and_sites(settings: Settings) -> None:
    token = mint_token(settings, "th-1", "therapist", ["site-b", "site-a", "site-a"])

    staff = verify_token(settings, token)

    assert staff == Staff(subject="th-1", role="therapist", sites=frozenset({"site-a", "site-b"}))


def test_minting_a_token_for_an_unknown_role_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        mint_token(settings, "x", "admin", ["site-a"])


def test_a_token_with_no_sites_verifies_to_no_sites(settings: Settings) -> None:
    staff = verify_token(settings, mint_token(settings, "a-1", "data_analyst", []))

    assert staff.sites == frozenset()


# -- 401 -------------------------------------------------------------------------------------


def test_an_expired_token_is_refused(settings: Settings) -> None:
    token = mint_token(settings, "th-1", "therapist", ["site-a"], ttl=timedelta(minutes=-5))

    assert unauthorised(settings, token).detail == "The token has expired."


def test_a_token_expired_within_the_clock_skew_leeway_is_still_accepted(
    settings: Settings,
) -> None:
    token = mint_token(settings, "th-1", "therapist", ["site-a"], ttl=timedelta(seconds=-5))

    assert verify_token(settings, token).subject == "th-1"


def test_a_token_signed_with_another_secret_is_refused(settings: Settings) -> None:
    token = signed(settings, secret="another-secret-also-32-characters")

    assert "signature" in unauthorised(settings, token).detail.lower()


def test_a_token_for_another_audience_is_refused(settings: Settings) -> None:
    token = signed(settings, aud="some-other-app")

    assert "audience" in unauthorised(settings, token).detail.lower()


def test_a_token_from_another_issuer_is_refused(settings: Settings) -> None:
    token = signed(settings, iss="https://evil.example")

    assert "issuer" in unauthorised(settings, token).detail.lower()


def test_an_unsigned_alg_none_token_is_refused(settings: Settings) -> None:
    now = int(datetime.now(UTC).timestamp())
    body = claims(settings, iat=now, nbf=now, exp=now + 3600, role="clinical_lead")
    token = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(body)}."

    unauthorised(settings, token)


def test_a_token_signed_with_another_hmac_algorithm_is_refused(settings: Settings) -> None:
    token = jwt.encode(claims(settings), SECRET, algorithm="HS512")

    unauthorised(settings, token)


@pytest.mark.parametrize("missing", ["exp", "sub", "aud", "iss"])
def test_a_token_missing_a_required_claim_is_refused(settings: Settings, missing: str) -> None:
    token = signed(settings, **{missing: None})

    unauthorised(settings, token)


@pytest.mark.parametrize(
    "role", ["admin", "", None, ["therapist"]], ids=["unknown", "empty", "null", "list"]
)
def test_a_token_with_an_unknown_or_missing_role_is_refused(settings: Settings, role: Any) -> None:
    token = jwt.encode({**claims(settings), "role": role}, SECRET, algorithm=ALGORITHM)

    assert unauthorised(settings, token).detail == "The token's role claim is missing or unknown."


@pytest.mark.parametrize(
    "sites", ["site-a", {"site-a": True}, [1, 2], None], ids=["string", "object", "ints", "null"]
)
def test_a_token_whose_sites_are_not_a_list_of_ids_is_refused(
    settings: Settings, sites: Any
) -> None:
    token = jwt.encode({**claims(settings), "sites": sites}, SECRET, algorithm=ALGORITHM)

    assert (
        unauthorised(settings, token).detail
        == "The token's sites claim must be a list of site ids."
    )


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_garbage_is_refused(settings: Settings, token: str) -> None:
    unauthorised(settings, token)


# -- site and role scope ---------------------------------------------------------------------

STAFF = Staff(subject="sv-1", role="supervisor", sites=frozenset({"site-a"}))


def test_require_site_allows_a_site_in_the_token() -> None:
    STAFF.require_site("site-a")


def test_require_site_refuses_another_site_with_a_403_naming_the_rule() -> None:
    with pytest.raises(Problem) as raised:
        STAFF.require_site("site-b")

    assert raised.value.status == 403
    assert raised.value.errors == [{"field": "site_id", "rule": "site_scope"}]
    assert "'site-b'" in raised.value.detail


def test_require_role_allows_one_of_the_roles() -> None:
    STAFF.require_role("clinical_lead", "supervisor")


def test_require_role_refuses_other_roles_with_a_403_naming_the_rule() -> None:
    with pytest.raises(Problem) as raised:
        STAFF.require_role("clinical_lead", "site_admin")

    assert raised.value.status == 403
    assert raised.value.errors == [{"field": "role", "rule": "role_scope"}]
    assert "clinical_lead, site_admin" in raised.value.detail
    assert "'supervisor'" in raised.value.detail


# -- through HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.settings = settings
    install_problem_handlers(app)

    @app.get("/me")
    async def me(staff: CurrentStaff) -> dict[str, Any]:
        return {"sub": staff.subject, "role": staff.role, "sites": sorted(staff.sites)}

    @app.get("/sites/{site_id}")
    async def site(site_id: str, staff: CurrentStaff) -> dict[str, str]:
        staff.require_site(site_id)
        return {"site_id": site_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_request_with_a_valid_bearer_token_is_the_tokens_staff(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_token(settings, "th-1", "therapist", ["site-a"])

    response = await http.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json() == {"sub": "th-1", "role": "therapist", "sites": ["site-a"]}


async def test_the_bearer_scheme_is_case_insensitive(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_token(settings, "th-1", "therapist", ["site-a"])

    response = await http.get("/me", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


async def test_a_request_without_authorization_gets_a_401_problem(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/me")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "Send a bearer token in the Authorization header."


@pytest.mark.parametrize("header", ["Basic dGg6cGFzcw==", "Bearer", "Bearer   ", "Token abc"])
async def test_a_request_without_a_bearer_token_gets_a_401_problem(
    http: httpx.AsyncClient, header: str
) -> None:
    response = await http.get("/me", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_request_with_an_expired_token_gets_a_401_problem(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_token(settings, "th-1", "therapist", ["site-a"], ttl=timedelta(minutes=-5))

    response = await http.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["detail"] == "The token has expired."


async def test_a_request_for_another_site_gets_a_403_problem_naming_the_rule(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    token = mint_token(settings, "th-1", "therapist", ["site-a"])

    response = await http.get("/sites/site-b", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": "site_id", "rule": "site_scope"}]
