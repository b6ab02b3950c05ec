"""An alert's life in notify: each step of ``alliance.alert`` is announced once, in order
(shared/alert_life.py). An opening is routed as before (rule 1 and the policy's rules); a
later step (acknowledged, action_recorded, resolved, closed) goes to the webhooks of the rules
that ask for it (``steps`` in a routing rule), and to nobody by default. An alert that ended is
never reopened by an opening that arrives late (a replay, a reordering). A step that shows the
alert followed up (seen, acted on, ended) stops the escalation of its opening notice, in
whichever order the two arrive. A step's webhook carries its place in the alert's life: the
dispatcher holds it while an earlier step's webhook to the same endpoint is unsent (a retry)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import mapping
from services.notify.dependencies import NotifyDependencies
from services.notify.escalation import FOLLOWED_UP
from services.notify.models import NotifyAlertLife
from services.notify.usecases.notices import (
    NOTICES,
    AfterCommit,
    open_notice,
    plan_notice,
    tell_site,
)
from shared.alert_life import AlertLife, take
from shared.contracts import AllianceAlert
from shared.db import upsert

LIVES = NotifyAlertLife.__table__  # type: ignore[attr-defined]


async def life_of(session: AsyncSession, alert: AllianceAlert, now: datetime) -> Any:
    """The alert's life so far (created empty the first time), locked until the commit: one
    statement, whose no-op update of a row that exists takes the row's lock as ``FOR UPDATE``
    would."""
    insert = upsert(session, LIVES).values(
        alert_id=alert.alert_id, site_id=alert.site_id, announced=[], actions=0, updated_at=now
    )
    statement = insert.on_conflict_do_update(
        index_elements=["alert_id"], set_={"alert_id": insert.excluded.alert_id}
    ).returning(*LIVES.c)
    return (await session.execute(statement)).one()


async def stop_escalation(session: AsyncSession, notice_key: str) -> None:
    """Somebody saw the alert, acted on it, or it ended: nobody else need be told."""
    await session.execute(
        update(NOTICES)
        .where(NOTICES.c.notice_key == notice_key, NOTICES.c.escalated_at.is_(None))
        .values(escalate_at=None)
    )


async def follow_alert(
    deps: NotifyDependencies,
    session: AsyncSession,
    event_id: str,
    alert: AllianceAlert,
    after_commit: AfterCommit,
) -> bool:
    """Announce this step of the alert if it is new and in order; True if it was."""
    now = datetime.now(UTC)
    row = await life_of(session, alert, now)
    decision = take(AlertLife(frozenset(row.announced or []), row.actions), alert.status)
    life = decision.life
    opening = (
        replace(mapping.alert_notice(event_id, alert), position=life.position)
        if alert.status == "opened"
        else None
    )
    notice_key = row.notice_key or (opening.key if opening is not None else None)
    await session.execute(
        update(LIVES)
        .where(LIVES.c.alert_id == alert.alert_id)
        .values(
            announced=sorted(life.announced),
            actions=life.actions,
            ended_at=row.ended_at or (now if life.ended else None),
            updated_at=now,
            notice_key=notice_key,
        )
    )
    if not decision.announce:
        return False
    if opening is not None:
        told = await tell_site(deps, session, opening, after_commit)
        if FOLLOWED_UP & life.announced:  # followed up before its opening arrived
            await stop_escalation(session, opening.key)
        return told
    if FOLLOWED_UP & life.announced and notice_key is not None:
        await stop_escalation(session, notice_key)
    notice = replace(mapping.alert_step_notice(event_id, alert), position=life.position)
    routing = await deps.policies.routing(session, alert.site_id)
    if not plan_notice(deps, notice, routing):
        return False  # no rule of the site asks for this step: nothing to send or to wait for
    return await open_notice(deps, session, notice, routing, after_commit)
