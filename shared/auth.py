"""Staff authentication (bearer JWTs with OIDC-style claims) and site/role scoping.

A token carries ``sub``, ``role`` and ``sites``; every read and write is checked against them.
Development uses HS256 with ``RAPPORT_JWT_SECRET`` (``rapport token`` mints one); production
may do the same with a real secret from a Kubernetes Secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, get_args

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.db import use_sites
from shared.problems import Problem
from shared.ratelimit import SiteRateLimiter
from shared.settings import Settings

Role = Literal[
    "intake_coordinator",  # registers intakes, proposes and confirms matches
    "therapist",  # sees their own clients only
    "supervisor",  # sees the therapists of their sites, receives escalations
    "clinical_lead",  # sees everything at their sites, receives risk alerts
    "site_admin",  # manages therapists, routing, webhooks of their sites
    "data_analyst",  # aggregates only, never client-level data
]
ROLES: frozenset[str] = frozenset(get_args(Role))
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Staff:
    """The authenticated caller."""

    subject: str
    role: str
    sites: frozenset[str]

    def can_access_site(self, site_id: str) -> bool:
        return site_id in self.sites

    def require_site(self, site_id: str) -> None:
        if not self.can_access_site(site_id):
            raise Problem(
                403,
                "Site not allowed",
                f"Your token does not grant access to site {site_id!r}.",
                errors=[{"field": "site_id", "rule": "site_scope"}],
            )

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Problem(
                403,
                "Role not allowed",
                f"This action needs one of the roles {', '.join(sorted(roles))}; "
                f"your token has {self.role!r}.",
                errors=[{"field": "role", "rule": "role_scope"}],
            )


def mint_token(
    settings: Settings,
    subject: str,
    role: str,
    sites: list[str],
    ttl: timedelta = timedelta(hours=8),
) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(sorted(ROLES))}")
    now = datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
        "sites": sorted(set(sites)),
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> Staff:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "aud", "iss"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorised("The token has expired.") from None
    except jwt.InvalidTokenError as error:
        raise _unauthorised(f"The token is not valid: {error}.") from None
    role, sites = claims.get("role"), claims.get("sites")
    if not isinstance(role, str) or role not in ROLES:
        raise _unauthorised("The token's role claim is missing or unknown.")
    if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
        raise _unauthorised("The token's sites claim must be a list of site ids.")
    return Staff(subject=str(claims["sub"]), role=role, sites=frozenset(sites))


def _unauthorised(detail: str) -> Problem:
    return Problem(401, "Not authenticated", detail, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False, description="Staff JWT (claims sub, role, sites)")


async def current_staff(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Staff:
    """The caller, charged against their sites' request budgets (shared/ratelimit.py) and
    remembered on the request for its audit record (shared/audit.py). Also scopes the request's
    database transactions to the token's sites (PostgreSQL row-level security, see
    ``shared/db.py``). Async on purpose: it runs in the request's own task, so the scope it sets
    is the one the route's transactions see."""
    if (
        credentials is None
        or credentials.scheme.lower() != "bearer"
        or not credentials.credentials.strip()
    ):
        raise _unauthorised("Send a bearer token in the Authorization header.")
    settings: Settings = request.app.state.settings
    staff = verify_token(settings, credentials.credentials.strip())
    limiter: SiteRateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.charge(staff.sites)
    request.state.staff = staff
    use_sites(staff.sites)
    return staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]
