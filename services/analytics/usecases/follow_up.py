"""Following an alert up: it was seen (notify tells: the first acknowledgement of one of its
deliveries), a clinician records what was done (a coded action of the site's list, retried
safely with an ``Idempotency-Key``) and closes it with a reason (a risk alert only once an
action is recorded). Each step is published once, in order (``shared.alert_life``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.domain.followup import (
    action_on_ended_is_conflict,
    may_close,
    unknown_action,
)
from services.analytics.errors import (
    ActionRequiredBeforeClosing,
    AlertClosed,
    IdempotencyKeyReused,
    UnknownAction,
)
from services.analytics.models import (
    ALERT_ACTIONS,
    ALERT_DELIVERIES,
    ALERTS,
    AnalyticsAlert,
    AnalyticsAlertAction,
    AnalyticsEpisode,
)
from services.analytics.usecases.alerts import step_event, visible_alert
from shared.alert_life import AlertLife, Step, take
from shared.auth import Staff
from shared.contracts import AllianceAlert, NotificationAcknowledged, NotificationDelivered
from shared.crypto import seal_for_client, unseal_for_client
from shared.db import dialect_of, insert_or_ignore
from shared.errors import Invalid
from shared.events import Event
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class RecordedAction:
    action: AnalyticsAlertAction
    alert: AnalyticsAlert
    note: str | None = None


async def client_of(session: AsyncSession, episode_id: str) -> str | None:
    """The episode's client (pseudonym), learnt from match.confirmed."""
    episode = await session.get(AnalyticsEpisode, episode_id)
    return None if episode is None else episode.client


async def sealed_note(
    deps: AnalyticsDependencies,
    session: AsyncSession,
    row: AnalyticsAlert,
    action_id: str,
    note: str,
) -> str:
    """The note sealed under the client's own data key (bound to the action)."""
    client = await client_of(session, row.episode_id)
    if client is None:  # an episode analytics learnt before it kept the client
        raise Invalid(
            "note: this episode's client is not known here, so a note cannot be sealed under "
            "their key; record the action without a note.",
            field="note",
            rule="client_unknown",
        )
    key = await deps.client_keys.key(session, client)
    return seal_for_client(key, note, associated=action_id)


async def notes_of(
    deps: AnalyticsDependencies,
    session: AsyncSession,
    client: str | None,
    actions: Sequence[AnalyticsAlertAction],
) -> dict[str, str]:
    """The actions' notes, unsealed, by action id (none once the client's key is destroyed)."""
    sealed = [a for a in actions if a.note_sealed]
    if not sealed or client is None:
        return {}
    key = (await deps.client_keys.existing_many(session, [client])).get(client)
    if key is None:
        return {}
    return {a.id: unseal_for_client(key, a.note_sealed or "", associated=a.id) for a in sealed}


async def actions_on(session: AsyncSession, alert_id: str) -> int:
    counted = await session.execute(
        sa_select(func.count())
        .select_from(ALERT_ACTIONS)
        .where(ALERT_ACTIONS.c.alert_id == alert_id)
    )
    return int(counted.scalar_one())


def life_of(row: AnalyticsAlert, actions: int) -> AlertLife:
    """What has been announced of this alert, read from its row."""
    announced: set[str] = {"opened"}
    if row.seen_at is not None:
        announced.add("acknowledged")
    if actions:
        announced.add("action_recorded")
    if row.status == "closed":
        announced.add("closed")
    elif row.status == "resolved":
        announced.add("resolved")
    return AlertLife(frozenset(announced), actions)


async def emit_step(
    deps: AnalyticsDependencies,
    session: AsyncSession,
    row: AnalyticsAlert,
    life: AlertLife,
    step: Step,
    now: datetime,
    **detail: str | None,
) -> AlertLife:
    decision = take(life, step)
    if decision.announce:
        await deps.runtime.emit(session, step_event(row, step, now, **detail))
    return decision.life


async def record_action(
    deps: AnalyticsDependencies,
    session: AsyncSession,
    staff: Staff,
    alert_id: str,
    code: str,
    idempotency_key: str | None,
    now: datetime,
    note: str | None = None,
) -> RecordedAction:
    """Record what a clinician did about an alert, with an optional note sealed under the
    client's key (it goes on no topic: the event carries the code only). The same
    ``Idempotency-Key`` again answers the action it recorded the first time (nothing recorded
    twice); with another code or note it is a conflict."""
    row = await visible_alert(session, staff, alert_id)  # locked until the commit
    if idempotency_key is not None:
        earlier = (
            await session.exec(
                select(AnalyticsAlertAction).where(
                    AnalyticsAlertAction.alert_id == row.id,
                    AnalyticsAlertAction.idempotency_key == idempotency_key,
                )
            )
        ).first()
        if earlier is not None:
            client = await client_of(session, row.episode_id)
            earlier_note = (await notes_of(deps, session, client, [earlier])).get(earlier.id)
            if earlier.code != code or earlier_note != note:
                raise IdempotencyKeyReused()
            return RecordedAction(earlier, row, earlier_note)
    if action_on_ended_is_conflict(row.status):
        raise AlertClosed()
    valid = deps.rules.for_site(row.site_id).action_codes
    if unknown_action(code, valid):
        raise UnknownAction(code, valid)
    life = life_of(row, await actions_on(session, row.id))
    action_id = str(uuid.uuid4())
    action = AnalyticsAlertAction(
        id=action_id,
        alert_id=row.id,
        episode_id=row.episode_id,
        site_id=row.site_id,
        code=code,
        recorded_by=staff.subject[:128],
        recorded_at=now,
        idempotency_key=idempotency_key,
        note_sealed=None
        if note is None
        else await sealed_note(deps, session, row, action_id, note),
    )
    session.add(action)
    await session.flush()
    await emit_step(deps, session, row, life, "action_recorded", now, action_code=code)
    return RecordedAction(action, row, note)


async def close_alert(
    deps: AnalyticsDependencies,
    session: AsyncSession,
    staff: Staff,
    alert_id: str,
    reason: str,
    now: datetime,
) -> AnalyticsAlert:
    """A clinician closes an alert with a reason; a risk alert only once an action is recorded.
    An alert already closed is a conflict; one its rule resolved is closed without a second
    ending being announced."""
    row = await visible_alert(session, staff, alert_id)
    if row.status == "closed":
        raise AlertClosed()
    actions = await actions_on(session, row.id)
    if not may_close(row.kind, actions):
        raise ActionRequiredBeforeClosing(row.kind)
    life = life_of(row, actions)
    await session.execute(
        update(ALERTS)
        .where(ALERTS.c.id == row.id)
        .values(
            status="closed",
            closed_at=now,
            closed_by=staff.subject[:128],
            close_reason=reason,
            resolved_at=func.coalesce(ALERTS.c.resolved_at, now),
        )
    )
    await emit_step(deps, session, row, life, "closed", now, close_reason=reason)
    await session.refresh(row)
    return row


async def seen_alert(
    session: AsyncSession, seen: NotificationAcknowledged | NotificationDelivered
) -> AnalyticsAlert | None:
    """The alert a notice acknowledged (or delivered) in notify was about, locked (None: not an
    alert's, or not known here)."""
    statement = select(AnalyticsAlert)
    if seen.alert_id is not None:
        statement = statement.where(AnalyticsAlert.id == seen.alert_id)
    elif seen.kind == "risk" and seen.session_number is not None:
        statement = statement.where(
            AnalyticsAlert.episode_id == seen.episode_id,
            AnalyticsAlert.kind == "risk",
            AnalyticsAlert.opened_session == seen.session_number,
            AnalyticsAlert.respondent == seen.respondent,
            AnalyticsAlert.instrument == seen.instrument,
        )
    else:
        return None
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    return (await session.exec(statement.limit(1))).first()


async def alert_seen(
    deps: AnalyticsDependencies, session: AsyncSession, seen: NotificationAcknowledged
) -> list[Event[AllianceAlert]]:
    """The first acknowledgement of an alert's delivery: it was seen (recorded once; announced
    unless an action or its ending came first)."""
    row = await seen_alert(session, seen)
    if row is None or row.seen_at is not None:
        return []
    life = life_of(row, await actions_on(session, row.id))
    await session.execute(
        update(ALERTS).where(ALERTS.c.id == row.id).values(seen_at=seen.acknowledged_at)
    )
    decision = take(life, "acknowledged")
    if not decision.announce:
        return []
    return [step_event(row, "acknowledged", seen.acknowledged_at)]


async def alert_delivered(session: AsyncSession, delivered: NotificationDelivered) -> None:
    """A message about an alert reached its recipient: recorded once for the episode's
    timeline (by role and channel only). A delivery that names no alert known here is not."""
    if delivered.delivery_kind is None or delivered.episode_id is None:
        return
    row = await seen_alert(session, delivered)
    if row is None:
        return
    await session.execute(
        insert_or_ignore(session, ALERT_DELIVERIES, ["delivery_id"]).values(
            delivery_id=delivered.delivery_id,
            alert_id=row.id,
            episode_id=row.episode_id,
            site_id=row.site_id,
            channel=delivered.channel,
            recipient_role=delivered.recipient_role,
            delivery_kind=delivered.delivery_kind,
            delivered_at=delivered.delivered_at,
        )
    )
