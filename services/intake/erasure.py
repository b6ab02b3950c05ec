"""Erasure of a client on request (intake): the staff route that starts it, and intake's own
share of it.

``POST /intake/erasures`` (site admin or clinical lead of the client's site) records the
request (who, when, which site and pseudonym) and emits ``client.erasure.requested`` with the
client's episode ids; every service, intake included, consumes it. Intake deletes the client's
intakes, matches and episodes (freeing a reserved place), destroys the client's data key and
registers the pseudonym and episodes as erased. Therapists' caseloads and effectiveness stay.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.handlers import free_place
from services.intake.models import (
    CLIENT_KEYS,
    ERASED,
    ERASURES,
    OUTBOX,
    IntakeEpisode,
    IntakeIntake,
    IntakeMatch,
)
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.consumer import Delivery
from shared.contracts import CLIENT_ERASURE_REQUESTED, ClientErasureRequested, Id
from shared.crypto import pseudonymise
from shared.erasure import ErasureRegister, rows_affected, shred_client_keys, table_of
from shared.events import Event
from shared.problems import Problem
from shared.runtime import runtime_of

router = APIRouter(prefix="/intake", tags=["intake"])
REQUEST_ERASURE = ("site_admin", "clinical_lead")
REGISTER = ErasureRegister(ERASURES, ERASED)
CLOSED_PHASES = {"closed", "dropped_out", "withdrawn", "transferred", "erased"}


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Id
    # Exactly as given when the client's intake or episode was registered.
    client_reference: str = Field(
        min_length=1,
        max_length=128,
        description="The clinic's own client reference (never stored in clear).",
    )


class ErasureOut(BaseModel):
    request_id: str
    site_id: str
    client: str = Field(description="The client's pseudonym")
    episodes: int
    requested_at: datetime


async def _episode_ids(session: AsyncSession, client: str) -> list[str]:
    rows = await session.execute(select(IntakeEpisode.id).where(IntakeEpisode.client == client))
    return sorted(str(r) for r in rows.scalars())


@router.post(
    "/erasures",
    status_code=202,
    response_model=ErasureOut,
    summary="Erase a client's data in every service (site admin or clinical lead)",
    dependencies=[audited("intake", "client.erase", "client")],
)
async def request_erasure(request: Request, body: ErasureIn, staff: CurrentStaff) -> ErasureOut:
    staff.require_role(*REQUEST_ERASURE)
    staff.require_site(body.site_id)
    runtime = runtime_of(request, "intake")
    key = runtime.settings.pseudonym_key.get_secret_value()
    client = pseudonymise(key, f"client:{body.site_id}:{body.client_reference}")
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    async with runtime.transaction() as session:
        known = await session.scalar(
            select(IntakeIntake.id).where(IntakeIntake.client == client).limit(1)
        ) or await session.scalar(
            select(IntakeEpisode.id).where(IntakeEpisode.client == client).limit(1)
        )
        if known is None:
            raise Problem(
                404,
                "Client not found",
                f"No client with this reference at site {body.site_id!r}.",
                errors=[{"field": "client_reference", "rule": "not_found"}],
            )
        episodes = await _episode_ids(session, client)
        await REGISTER.record(
            session,
            request_id=request_id,
            site_id=body.site_id,
            client=client,
            requested_at=now,
            requested_by=staff.subject,
        )
        await runtime.emit(
            session,
            Event(
                CLIENT_ERASURE_REQUESTED,
                ClientErasureRequested(
                    request_id=request_id,
                    client=client,
                    site_id=body.site_id,
                    requested_at=now,
                    episode_ids=episodes,
                ),
                source=runtime.outbox.source,
            ),
        )
    return ErasureOut(
        request_id=request_id,
        site_id=body.site_id,
        client=client,
        episodes=len(episodes),
        requested_at=now,
    )


async def on_erasure_requested(delivery: Delivery[ClientErasureRequested]) -> list[Event[Any]]:
    data = delivery.event.data
    session = delivery.session
    client = data.client
    episodes = sorted(set(data.episode_ids) | set(await _episode_ids(session, client)))
    now = datetime.now(UTC)
    removed: dict[str, int] = {}
    open_rows = (
        await session.execute(
            select(IntakeEpisode.therapist_id, IntakeEpisode.phase, IntakeEpisode.match_id).where(
                IntakeEpisode.client == client
            )
        )
    ).all()
    for therapist_id, phase, match_id in open_rows:
        if phase not in CLOSED_PHASES and match_id is not None:
            await free_place(session, therapist_id, now)  # the reserved place is free again
    for table, where in (
        (table_of(IntakeEpisode), table_of(IntakeEpisode).c.client == client),
        (table_of(IntakeMatch), table_of(IntakeMatch).c.client == client),
        (table_of(IntakeIntake), table_of(IntakeIntake).c.client == client),
    ):
        result = await session.execute(delete(table).where(where))
        removed[table.name] = rows_affected(result)
    # Crypto-shredding: every reference sealed under the client's key is unreadable for good.
    removed[CLIENT_KEYS.name] = await shred_client_keys(session, CLIENT_KEYS, [client])
    await REGISTER.conclude(
        session, data, outbox=OUTBOX, clients=[client], episodes=episodes, removed=removed
    )
    return []
