"""Erasure of a client on request (intake): the request, and intake's own share of it.

A site admin or clinical lead of the client's site records the request (who, when, which site
and pseudonym); ``client.erasure.requested`` carries the client's episode ids to every service,
intake included. Intake deletes the client's intakes, matches and episodes (freeing a reserved
place) and their pending drop-out checks, destroys the client's data key and registers the
pseudonym and episodes as erased. Therapists' caseloads and effectiveness stay.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.episodes import is_closed
from services.intake.errors import ClientNotFound, broken
from services.intake.mapping import SOURCE, ErasureIn, ErasureOut
from services.intake.models import (
    CLIENT_KEYS,
    DUE_CHECKS,
    ERASED,
    ERASURES,
    OUTBOX,
    IntakeEpisode,
    IntakeIntake,
    IntakeMatch,
)
from services.intake.usecases.places import free_place
from services.intake.usecases.references import client_pseudonym
from shared.auth import Staff
from shared.contracts import CLIENT_ERASURE_REQUESTED, ClientErasureRequested
from shared.erasure import ErasureRegister, rows_affected, shred_client_keys, table_of
from shared.events import Event

REGISTER = ErasureRegister(ERASURES, ERASED)


async def _episode_ids(session: AsyncSession, client: str) -> list[str]:
    rows = await session.execute(select(IntakeEpisode.id).where(IntakeEpisode.client == client))
    return sorted(str(r) for r in rows.scalars())


async def request_erasure(
    deps: IntakeDependencies, session: AsyncSession, staff: Staff, body: ErasureIn
) -> ErasureOut:
    """Record the request and emit ``client.erasure.requested`` (404 for a client intake has
    never seen at the site)."""
    client = client_pseudonym(deps.settings, body.site_id, body.client_reference)
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    known = await session.scalar(
        select(IntakeIntake.id).where(IntakeIntake.client == client).limit(1)
    ) or await session.scalar(
        select(IntakeEpisode.id).where(IntakeEpisode.client == client).limit(1)
    )
    if known is None:
        raise ClientNotFound(
            f"No client with this reference at site {body.site_id!r}.",
            errors=broken("client_reference", "not_found"),
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
    await deps.runtime.emit(
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
            source=SOURCE,
        ),
    )
    return ErasureOut(
        request_id=request_id,
        site_id=body.site_id,
        client=client,
        episodes=len(episodes),
        requested_at=now,
    )


async def erase_client(session: AsyncSession, data: ClientErasureRequested) -> list[Event[Any]]:
    """Intake's share: the client's rows deleted (a reserved place freed), the client's key
    shredded, the erasure concluded and registered."""
    client = data.client
    episodes = sorted(set(data.episode_ids) | set(await _episode_ids(session, client)))
    now = datetime.now(UTC)
    removed: dict[str, int] = {}
    # The episodes' drop-out checks first: a check firing takes its row before the episode and
    # the therapist, and this transaction takes them in the same order.
    dropped = await session.execute(delete(DUE_CHECKS).where(DUE_CHECKS.c.subject.in_(episodes)))
    removed[DUE_CHECKS.name] = rows_affected(dropped)
    open_rows = (
        await session.execute(
            select(IntakeEpisode.therapist_id, IntakeEpisode.phase, IntakeEpisode.match_id).where(
                IntakeEpisode.client == client
            )
        )
    ).all()
    for therapist_id, phase, match_id in open_rows:
        if not is_closed(phase) and match_id is not None:
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
