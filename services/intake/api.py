"""Intake HTTP routes for staff front-ends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from services.intake.models import IntakeEpisode
from shared.auth import CurrentStaff
from shared.contracts import (
    EPISODE_CLOSED,
    MATCH_CONFIRMED,
    Code,
    EpisodeClosed,
    EpisodeMember,
    Id,
    MatchConfirmed,
)
from shared.crypto import derive_key, pseudonymise, seal
from shared.events import Event
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter(prefix="/intake", tags=["intake"])

MANAGE_EPISODES = ("intake_coordinator", "clinical_lead", "site_admin")
READ_EPISODES = ("intake_coordinator", "clinical_lead", "supervisor", "therapist")


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: str = Field(min_length=1, max_length=128)
    role: Literal["partner", "family"]


class EpisodeIn(BaseModel):
    """Open an episode with a therapist the coordinator has chosen (direct assignment)."""

    model_config = ConfigDict(extra="forbid")
    site_id: Id
    therapist_id: Id
    client_reference: str = Field(
        min_length=1,
        max_length=128,
        description="The clinic's own client reference; stored "
        "encrypted, published only as a pseudonym.",
    )
    domains: list[Code] = Field(default=[], max_length=20)
    severity: Literal["mild", "moderate", "severe"] | None = None
    members: list[MemberIn] = Field(default=[], max_length=10)


class EpisodeOut(BaseModel):
    episode_id: str
    site_id: str
    therapist_id: str
    client: str
    phase: str
    members: list[EpisodeMember]
    created_at: datetime


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "intake")


def _out(row: IntakeEpisode) -> EpisodeOut:
    return EpisodeOut(
        episode_id=row.id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        client=row.client,
        phase=row.phase,
        members=[EpisodeMember.model_validate(m) for m in row.members],
        created_at=row.created_at,
    )


@router.post(
    "/episodes",
    status_code=201,
    response_model=EpisodeOut,
    summary="Open an episode with a chosen therapist",
)
async def open_episode(request: Request, body: EpisodeIn, staff: CurrentStaff) -> EpisodeOut:
    staff.require_role(*MANAGE_EPISODES)
    staff.require_site(body.site_id)
    runtime = _runtime(request)
    settings = runtime.settings
    key = settings.pseudonym_key.get_secret_value()
    client = pseudonymise(key, f"client:{body.site_id}:{body.client_reference}")
    episode_id = str(uuid.uuid4())
    members = [EpisodeMember(respondent=client, role="client")] + [
        EpisodeMember(respondent=pseudonymise(key, f"{episode_id}:{m.reference}"), role=m.role)
        for m in body.members
    ]
    row = IntakeEpisode(
        id=episode_id,
        site_id=body.site_id,
        therapist_id=body.therapist_id,
        client=client,
        client_reference_sealed=seal(
            derive_key(settings.encryption_key.get_secret_value(), "intake-client-reference"),
            body.client_reference,
            associated=episode_id,
        ),
        domains=list(body.domains),
        severity=body.severity,
        members=[m.model_dump() for m in members],
        created_at=datetime.now(UTC),
    )
    async with runtime.transaction() as session:
        session.add(row)
        await runtime.emit(
            session,
            Event(
                MATCH_CONFIRMED,
                MatchConfirmed(
                    match_id=f"direct-{episode_id}",
                    episode_id=episode_id,
                    site_id=row.site_id,
                    therapist_id=row.therapist_id,
                    client=client,
                    domains=row.domains,
                    severity=body.severity,
                    members=members,
                    confirmed_at=row.created_at,
                ),
                source=runtime.outbox.source,
            ),
        )
    return _out(row)


@router.get("/episodes/{episode_id}", response_model=EpisodeOut, summary="One episode")
async def get_episode(request: Request, episode_id: Id, staff: CurrentStaff) -> EpisodeOut:
    staff.require_role(*READ_EPISODES)
    async with _runtime(request).sessionmaker() as session:
        row = await session.get(IntakeEpisode, episode_id)
    if (
        row is None
        or not staff.can_access_site(row.site_id)
        or (staff.role == "therapist" and staff.subject != row.therapist_id)
    ):
        raise Problem(404, "Episode not found", f"No episode {episode_id!r} that you may see.")
    return _out(row)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Literal["completed", "dropped_out", "withdrawn"]


@router.post(
    "/episodes/{episode_id}/close",
    response_model=EpisodeOut,
    summary="Close an episode (completed, dropped out or withdrawn)",
)
async def close_episode(
    request: Request, episode_id: Id, body: CloseIn, staff: CurrentStaff
) -> EpisodeOut:
    staff.require_role(*MANAGE_EPISODES, "therapist")
    runtime = _runtime(request)
    async with runtime.transaction() as session:
        row = await session.get(IntakeEpisode, episode_id)
        if (
            row is None
            or not staff.can_access_site(row.site_id)
            or (staff.role == "therapist" and staff.subject != row.therapist_id)
        ):
            raise Problem(
                404, "Episode not found", f"No episode {episode_id!r} that you may close."
            )
        if row.phase in {"closed", "dropped_out", "withdrawn"}:
            raise Problem(
                409,
                "Episode already closed",
                f"The episode is {row.phase}.",
                errors=[{"field": "episode_id", "rule": "already_closed"}],
            )
        row.phase = "closed" if body.reason == "completed" else body.reason
        session.add(row)
        await runtime.emit(
            session,
            Event(
                EPISODE_CLOSED,
                EpisodeClosed(
                    episode_id=row.id,
                    site_id=row.site_id,
                    therapist_id=row.therapist_id,
                    reason=body.reason,
                    closed_at=datetime.now(UTC),
                ),
                source=runtime.outbox.source,
            ),
        )
    return _out(row)
