"""Alerts: opening and resolving the rows of the changes the rules report, the alerts at a
site, and a clinician's acknowledgement of a risk alert (which stays open until then)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.domain import UNTIL_ACKNOWLEDGED, AlertChange, Severity
from services.analytics.errors import AlertAlreadyClosed, AlertNotAcknowledgeable, AlertNotFound
from services.analytics.models import ALERTS, AnalyticsAlert
from shared.alert_life import Step
from shared.auth import Staff
from shared.contracts import ALLIANCE_ALERT, AllianceAlert
from shared.db import dialect_of
from shared.events import Event
from shared.logs import get_logger

SOURCE = "/rapport/analytics"
log = get_logger(__name__)


@dataclass(frozen=True)
class EpisodeOwners:
    """The episode an alert belongs to, and whose it is."""

    episode_id: str
    site_id: str
    therapist_id: str


@dataclass(frozen=True)
class AlertOwners:
    alert_id: str
    site_id: str
    therapist_id: str


async def open_alerts(
    session: AsyncSession,
    episode: EpisodeOwners,
    changes: Sequence[AlertChange],
    now: datetime,
) -> list[AlertOwners]:
    """Open these alerts (one statement); their ids and owners, in order."""
    ids = [str(uuid.uuid4()) for _ in changes]
    rows = []
    for alert_id, change in zip(ids, changes, strict=True):
        # Events no rule resolves: a repair closes as it opens; a risk alert stays open until a
        # clinician acknowledges it (POST /analytics/alerts/{alert_id}/acknowledge).
        resolved = not change.lasting and not change.awaits_acknowledgement
        rows.append(
            {
                "id": alert_id,
                "episode_id": episode.episode_id,
                "site_id": episode.site_id,
                "therapist_id": episode.therapist_id,
                "kind": change.kind,
                "severity": change.severity,
                "rule": change.rule,
                "respondent": change.respondent_id,
                "instrument": change.instrument,
                "triggered_by": change.triggered_by,
                "status": "resolved" if resolved else "open",
                "opened_session": change.opened_session,
                "resolved_session": change.session if resolved else None,
                "inputs": change.inputs,
                "suggestion_code": change.suggestion_code,
                "suggestion": change.suggestion[:300],
                "opened_at": now,
                "resolved_at": now if resolved else None,
            }
        )
    if rows:
        await session.execute(insert(ALERTS), rows)
    return [AlertOwners(alert_id, episode.site_id, episode.therapist_id) for alert_id in ids]


async def resolve_alert(
    session: AsyncSession, episode: EpisodeOwners, change: AlertChange, now: datetime
) -> AlertOwners | None:
    """Resolve one open alert; its id and owners (None: nothing open)."""
    found = (
        await session.execute(
            sa_select(ALERTS.c.id, ALERTS.c.site_id, ALERTS.c.therapist_id)
            .where(
                ALERTS.c.episode_id == episode.episode_id,
                ALERTS.c.kind == change.kind,
                ALERTS.c.status == "open",
                ALERTS.c.opened_session == change.opened_session,
                ALERTS.c.respondent.is_(None)
                if change.respondent_id is None
                else ALERTS.c.respondent == change.respondent_id,
                ALERTS.c.instrument.is_(None)
                if change.instrument is None
                else ALERTS.c.instrument == change.instrument,
            )
            .limit(1)
        )
    ).first()
    if found is None:
        log.warning(
            "resolve for an alert that is not open",
            episode_id=episode.episode_id,
            kind=change.kind,
            opened_session=change.opened_session,
        )
        return None
    await session.execute(
        update(ALERTS)
        .where(ALERTS.c.id == found.id)
        .values(status="resolved", resolved_session=change.session, resolved_at=now)
    )
    return AlertOwners(found.id, found.site_id, found.therapist_id)


async def alert_events(
    session: AsyncSession, episode: EpisodeOwners, changes: Sequence[AlertChange], now: datetime
) -> list[Event[AllianceAlert]]:
    """Record the rules' changes (the alerts they open in one statement, resolutions one by
    one) and the ``alliance.alert`` event of each."""
    opened = [c for c in changes if c.action == "open"]
    new_alerts = iter(await open_alerts(session, episode, opened, now))
    emitted: list[Event[AllianceAlert]] = []
    for change in changes:
        if change.action == "open":
            alert: AlertOwners | None = next(new_alerts)
        else:
            alert = await resolve_alert(session, episode, change, now)
        if alert is None:
            continue
        emitted.append(
            Event(
                ALLIANCE_ALERT,
                AllianceAlert(
                    alert_id=alert.alert_id,
                    episode_id=episode.episode_id,
                    site_id=alert.site_id,
                    therapist_id=alert.therapist_id,
                    status="opened" if change.action == "open" else "resolved",
                    kind=change.kind,
                    severity=change.severity,
                    rule=change.rule,
                    session_number=change.session,
                    respondent=change.respondent_id,
                    inputs=change.inputs,
                    suggestion_code=change.suggestion_code,
                    at=now,
                ),
                source=SOURCE,
            )
        )
    return emitted


async def alerts_at_site(
    session: AsyncSession,
    staff: Staff,
    site_id: str,
    status: Literal["open", "resolved", "closed", "all"],
    kind: str | None,
    therapist_id: str | None,
    limit: int,
    offset: int,
) -> Sequence[AnalyticsAlert]:
    """Alerts at one site, newest first; a therapist sees only their own clients'."""
    statement = select(AnalyticsAlert).where(AnalyticsAlert.site_id == site_id)
    if status != "all":
        statement = statement.where(AnalyticsAlert.status == status)
    if kind is not None:
        statement = statement.where(AnalyticsAlert.kind == kind)
    if staff.role == "therapist":
        statement = statement.where(AnalyticsAlert.therapist_id == staff.subject)
    elif therapist_id is not None:
        statement = statement.where(AnalyticsAlert.therapist_id == therapist_id)
    statement = (
        statement.order_by(col(AnalyticsAlert.opened_at).desc(), col(AnalyticsAlert.id))
        .offset(offset)
        .limit(limit)
    )
    return (await session.exec(statement)).all()


async def visible_alert(session: AsyncSession, staff: Staff, alert_id: str) -> AnalyticsAlert:
    """The alert, locked for update, if the caller may see it (else not found: never say which)."""
    statement = select(AnalyticsAlert).where(AnalyticsAlert.id == alert_id)
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    row = (await session.exec(statement)).first()
    if (
        row is None
        or not staff.can_access_site(row.site_id)
        or (staff.role == "therapist" and staff.subject != row.therapist_id)
    ):
        raise AlertNotFound(alert_id)
    return row


def step_event(
    row: AnalyticsAlert,
    status: Step,
    now: datetime,
    action_code: str | None = None,
    close_reason: str | None = None,
) -> Event[AllianceAlert]:
    """The ``alliance.alert`` event of a step after the opening (no inputs: only the opening
    carries the numbers that fired it)."""
    return Event(
        ALLIANCE_ALERT,
        AllianceAlert(
            alert_id=row.id,
            episode_id=row.episode_id,
            site_id=row.site_id,
            therapist_id=row.therapist_id,
            status=status,
            kind=row.kind,
            severity=cast(Severity, row.severity),
            rule=row.rule,
            session_number=row.opened_session,
            respondent=row.respondent,
            inputs={},
            suggestion_code="none",
            at=now,
            action_code=action_code,
            close_reason=close_reason,
        ),
        source=SOURCE,
    )


def acknowledged_event(row: AnalyticsAlert, now: datetime) -> Event[AllianceAlert]:
    return step_event(row, "acknowledged", now)


async def acknowledge_alert(
    deps: AnalyticsDependencies,
    session: AsyncSession,
    staff: Staff,
    alert_id: str,
    now: datetime,
) -> AnalyticsAlert:
    """A clinician acknowledges a risk alert: it closes, recording who and when. Acknowledging
    it again answers the same; any other alert, or one already closed, is a conflict."""
    row = await visible_alert(session, staff, alert_id)
    if row.acknowledged_at is not None:
        return row  # already acknowledged: the same answer, nothing new
    if row.kind not in UNTIL_ACKNOWLEDGED:
        raise AlertNotAcknowledgeable(row.kind)
    if row.status != "open":
        raise AlertAlreadyClosed(row.status)
    # Only the request that closes the open alert records it and publishes the change.
    closed = await session.execute(
        update(ALERTS)
        .where(ALERTS.c.id == row.id, ALERTS.c.status == "open")
        .values(
            status="resolved",
            resolved_at=now,
            acknowledged_at=now,
            acknowledged_by=staff.subject[:128],
            seen_at=func.coalesce(ALERTS.c.seen_at, now),
        )
    )
    if closed.rowcount == 1:  # type: ignore[attr-defined]
        await deps.runtime.emit(session, acknowledged_event(row, now))
    await session.refresh(row)
    return row
