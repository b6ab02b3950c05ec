"""What a client agreed to (consents, recorded and withdrawn by the staff of the episode) and
each site's confidentiality notice (edited by the site's admins; shown on the link page)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.feedback import mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import ConsentOut, NoticeOut
from services.feedback.routes.parameters import STAFF_WHO_RECORD
from services.feedback.usecases import consents
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import ConsentScope, Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()
NoticeRole = Literal["therapist", "clinical_lead", "supervisor", "site_admin", "intake_coordinator"]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: ConsentScope = Field(
        description="feedback_invitations, significant_others (contact with the partners and "
        "family members named in the episode) or aggregates (the network's figures)"
    )
    granted: bool = Field(description="true: agreed; false: withdrawn (takes effect at once)")
    version: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="The version of the notice the client was shown (default: the site's now)",
    )


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)
    risk_contacts: Annotated[list[NoticeRole], Field(min_length=1, max_length=5)]
    risk_within_minutes: int = Field(ge=1, le=7 * 24 * 60)


@router.post(
    "/episodes/{episode_id}/consents",
    status_code=201,
    response_model=ConsentOut,
    summary="Record what the episode's client agreed to, or withdrew, for one scope",
    dependencies=[audited("feedback", "consent.record", "episode", "episode_id")],
)
async def record_consent(
    deps: Deps, episode_id: Id, body: ConsentIn, staff: CurrentStaff
) -> ConsentOut:
    staff.require_role(*STAFF_WHO_RECORD)
    row = await consents.record_consent(
        deps, staff, episode_id, body.scope, body.granted, body.version
    )
    return mapping.consent_out(row)


@router.get(
    "/episodes/{episode_id}/consents",
    response_model=list[ConsentOut],
    summary="Every consent recorded for the episode's client, oldest first",
    dependencies=[audited("feedback", "consents.read", "episode", "episode_id")],
)
async def consent_history(
    deps: Deps,
    episode_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[ConsentOut]:
    staff.require_role(*STAFF_WHO_RECORD)
    rows = await consents.consent_history(deps, staff, episode_id)
    return [mapping.consent_out(r) for r in rows[offset : offset + limit]]


@router.put(
    "/sites/{site_id}/notice",
    response_model=NoticeOut,
    summary="Write a new version of the site's confidentiality notice (earlier ones are kept)",
)
async def write_notice(deps: Deps, site_id: Id, body: NoticeIn, staff: CurrentStaff) -> NoticeOut:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    notice = await consents.write_notice(
        deps, staff, site_id, body.text, list(body.risk_contacts), body.risk_within_minutes
    )
    return mapping.notice_out(notice)


@router.get(
    "/sites/{site_id}/notice",
    response_model=NoticeOut,
    summary="The site's confidentiality notice as the link page shows it now",
)
async def read_notice(deps: Deps, site_id: Id, staff: CurrentStaff) -> NoticeOut:
    staff.require_site(site_id)
    return mapping.notice_out(await consents.site_notice(deps, site_id))
