"""Authentication at every staff operation of every service (enumerated from the app): expired,
wrongly signed, wrong-audience, wrong-issuer, ``alg: none`` and algorithm-swapped tokens get a
401 problem with ``WWW-Authenticate: Bearer`` — before any data is read. One-time feedback links
cannot be forged, re-signed, edited or used twice (shared/tokens.py, feedback's /r routes).

The token rules themselves are unit-tested in tests/unit/test_auth.py; here they are proven at
each route, on the embedded default (no data is needed to be refused)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select

from services.feedback.models import FeedbackEpisode, FeedbackResponse
from shared import tokens
from shared.auth import mint_token
from shared.settings import Settings, load_settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.system.routes import OPERATIONS, STAFF_SCOPES, app_operations, error_media_type
from tests.system.world import HIGH_SRS, LOW_SRS

OTHER_SECRET = "another-deployment-secret-of-32-characters"


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "sub": "lead-1",
        "role": "clinical_lead",
        "sites": ["site-a"],
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
    }
    base.update(changes)
    return base


def bad_tokens(settings: Settings) -> dict[str, str]:
    secret = settings.jwt_secret.get_secret_value()
    past = datetime.now(UTC) - timedelta(hours=2)
    unsigned = claims(settings)
    unsigned = {
        k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in unsigned.items()
    }
    return {
        "expired": jwt.encode(
            claims(settings, iat=past, nbf=past, exp=past + timedelta(minutes=5)), secret
        ),
        "wrong_signature": jwt.encode(claims(settings), OTHER_SECRET),
        "wrong_audience": jwt.encode(claims(settings, aud="another-api"), secret),
        "wrong_issuer": jwt.encode(claims(settings, iss="someone-else"), secret),
        "alg_none": f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(unsigned)}.",
        "alg_hs512": jwt.encode(claims(settings), secret, algorithm="HS512"),
        "not_yet_valid": jwt.encode(
            claims(settings, nbf=datetime.now(UTC) + timedelta(hours=1)), secret
        ),
    }


@pytest.fixture(scope="module")
async def desk(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FeedbackDesk]:
    folder = tmp_path_factory.mktemp("auth")
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/{{service}}.db",
        redis_url="memory://",
        allow_private_webhooks=True,
        relay_idle_seconds=0.05,
    )
    async with feedback_desk(settings, ("intake", "feedback", "analytics", "notify")) as opened:
        yield opened


def staff_paths(desk: FeedbackDesk) -> list[tuple[str, str]]:
    app = desk.http._transport.app  # type: ignore[attr-defined]
    found = [k for k in app_operations(app) if k in OPERATIONS]
    return [k for k in found if OPERATIONS[k].scope in STAFF_SCOPES]


def concrete(path: str) -> str:
    """A template filled with plausible ids (the token is refused before any is looked up)."""
    return (
        path.replace("{site_id}", "site-a")
        .replace("{role}", "therapist")
        .replace("{respondent}", "p1_" + "0" * 32)
        .replace("{", "")
        .replace("}", "")
    )


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # alg_hs512
@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "wrong_signature",
        "wrong_audience",
        "wrong_issuer",
        "alg_none",
        "alg_hs512",
        "not_yet_valid",
    ],
)
async def test_every_staff_operation_refuses_a_bad_token_with_401(
    desk: FeedbackDesk, kind: str
) -> None:
    token = bad_tokens(desk.settings)[kind]
    failures = []
    paths = staff_paths(desk)
    for method, path in paths:
        answer = await desk.http.request(
            method,
            concrete(path),
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
            content=b"{}" if method in {"POST", "PUT"} else None,
        )
        if not (
            answer.status_code == 401
            and answer.headers.get("www-authenticate") == "Bearer"
            and answer.headers["content-type"] == error_media_type(path)
        ):
            failures.append(f"{method} {path} → {answer.status_code}")
    assert failures == []
    assert len(paths) >= 40


async def test_the_same_claims_properly_signed_are_accepted(desk: FeedbackDesk) -> None:
    """The control for the test above: only the defect makes the difference."""
    token = jwt.encode(claims(desk.settings), desk.settings.jwt_secret.get_secret_value())
    answer = await desk.http.get(
        "/feedback/instruments", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200


# -- one-time feedback links -------------------------------------------------------------------


async def _link(desk: FeedbackDesk, key: str | None = None, **changes: Any) -> tuple[str, str]:
    episode_id = await desk.open_episode()
    async with desk.host.runtimes["feedback"].sessionmaker() as session:
        episode = await session.get(FeedbackEpisode, episode_id)
        assert episode is not None
    grant: dict[str, Any] = {
        "episode_id": episode_id,
        "session_number": 2,
        "respondent": episode.client,
        "role": "client",
        "instruments": ("srs",),
        "ttl_seconds": 3600,
    }
    grant.update(changes)
    return episode_id, tokens.mint(key or desk.settings.encryption_key.get_secret_value(), **grant)


async def _responses(desk: FeedbackDesk, episode_id: str) -> int:
    async with desk.host.runtimes["feedback"].sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(FeedbackResponse)
                .where(FeedbackResponse.episode_id == episode_id)  # type: ignore[arg-type]
            )
            or 0
        )


def answer(items: dict[str, float]) -> dict[str, Any]:
    return {"responses": [{"instrument": "srs", "items": items}]}


async def test_a_used_link_cannot_record_a_second_different_answer(desk: FeedbackDesk) -> None:
    episode_id, link = await _link(desk)

    first = await desk.http.post(f"/feedback/r/{link}", json=answer(HIGH_SRS))
    second = await desk.http.post(f"/feedback/r/{link}", json=answer(LOW_SRS))

    assert first.status_code == 201
    assert second.status_code in (200, 409, 410)
    assert second.status_code != 201
    if second.status_code == 200:  # the original, not the new answer
        assert second.json() == first.json()
    assert await _responses(desk, episode_id) == 1


async def test_a_link_whose_claims_were_edited_is_refused_as_forged(desk: FeedbackDesk) -> None:
    episode_id, link = await _link(desk)
    other_episode = await desk.open_episode()
    body, _, signature = link.partition(".")
    claims_ = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims_["e"] = other_episode  # answer for someone else's episode
    edited = b64url(claims_).rstrip("=") + "." + signature

    refused = await desk.http.post(f"/feedback/r/{edited}", json=answer(HIGH_SRS))

    assert refused.status_code == 403
    assert refused.json()["errors"][0]["rule"] == "forged"
    assert await _responses(desk, other_episode) == 0
    assert await _responses(desk, episode_id) == 0


async def test_a_link_signed_with_another_key_is_refused_as_forged(desk: FeedbackDesk) -> None:
    episode_id, link = await _link(desk, key=OTHER_SECRET)

    refused = await desk.http.post(f"/feedback/r/{link}", json=answer(HIGH_SRS))

    assert refused.status_code == 403
    assert refused.json()["errors"][0]["rule"] == "forged"
    assert await _responses(desk, episode_id) == 0


async def test_a_link_with_another_links_signature_is_refused(desk: FeedbackDesk) -> None:
    _, first = await _link(desk)
    episode_id, second = await _link(desk)
    spliced = second.partition(".")[0] + "." + first.partition(".")[2]

    refused = await desk.http.get(f"/feedback/r/{spliced}")

    assert refused.status_code == 403
    assert await _responses(desk, episode_id) == 0


async def test_an_expired_link_is_gone(desk: FeedbackDesk) -> None:
    episode_id, link = await _link(desk, ttl_seconds=60, now=time.time() - 120)

    refused = await desk.http.post(f"/feedback/r/{link}", json=answer(HIGH_SRS))

    assert refused.status_code == 410
    assert await _responses(desk, episode_id) == 0


async def test_staff_tokens_do_not_open_feedback_links(desk: FeedbackDesk) -> None:
    """A staff JWT is not a feedback link (different key derivation and form)."""
    staff = mint_token(desk.settings, "lead-1", "clinical_lead", ["site-a"])
    with pytest.raises(tokens.TokenError):
        tokens.verify(desk.settings.encryption_key.get_secret_value(), staff)


async def test_a_valid_link_is_accepted_once(desk: FeedbackDesk) -> None:
    """The control for the refusals above."""
    episode_id, link = await _link(desk)

    accepted = await desk.http.post(f"/feedback/r/{link}", json=answer(HIGH_SRS))

    assert accepted.status_code == 201
    assert await _responses(desk, episode_id) == 1
