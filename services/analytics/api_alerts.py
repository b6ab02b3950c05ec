"""Analytics alert routes: the alerts at a site (open ones by default) and a clinician's
acknowledgement of a risk alert, which stays open until someone acknowledges it.

Every request is scoped to the caller's sites (and row-level security); a therapist sees and
acknowledges only their own clients' alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.domain import UNTIL_ACKNOWLEDGED, Severity
from services.analytics.handlers import ALERTS, SOURCE
from services.analytics.models import AnalyticsAlert
from shared.audit import audited
from shared.auth import CurrentStaff, Staff
from shared.contracts import ALERT_KINDS, ALLIANCE_ALERT, AllianceAlert, Id
from shared.db import dialect_of
from shared.events import Event
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of
from shared.vocabulary import one_of

if TYPE_CHECKING:
    AlertKind = str
else:  # an enum in the OpenAPI; an unknown kind is a 422 naming the valid ones
    AlertKind = one_of(ALERT_KINDS, "alert kind")

router = APIRouter()

CLINICAL = ("therapist", "supervisor", "clinical_lead")


class AlertOut(BaseModel):
    alert_id: str
    episode_id: str
    site_id: str
    therapist_id: str
    kind: str
    severity: str
    rule: str
    status: str
    respondent: str | None
    instrument: str | None
    opened_session: int
    resolved_session: int | None
    inputs: dict[str, float | int | str | bool | None]
    suggestion_code: str
    suggestion: str
    opened_at: datetime
    resolved_at: datetime | None
    # Set when a clinician acknowledged the alert (a risk alert stays open until then).
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


def alert_out(row: AnalyticsAlert) -> AlertOut:
    return AlertOut(
        alert_id=row.id,
        episode_id=row.episode_id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        kind=row.kind,
        severity=row.severity,
        rule=row.rule,
        status=row.status,
        respondent=row.respondent,
        instrument=row.instrument,
        opened_session=row.opened_session,
        resolved_session=row.resolved_session,
        inputs=row.inputs,
        suggestion_code=row.suggestion_code,
        suggestion=row.suggestion,
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
    )


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "analytics")


@router.get(
    "/alerts",
    dependencies=[audited("analytics", "alerts.read", "alerts")],
    response_model=list[AlertOut],
    summary="Alerts at one site (open ones by default, newest first)",
)
async def list_alerts(
    request: Request,
    staff: CurrentStaff,
    site_id: Id,
    status: Literal["open", "resolved", "all"] = "open",
    kind: Annotated[AlertKind | None, Query()] = None,
    therapist_id: Id | None = None,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[AlertOut]:
    staff.require_role(*CLINICAL)
    staff.require_site(site_id)
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
    async with _runtime(request).sessionmaker() as session:
        rows = (await session.exec(statement)).all()
    return [alert_out(r) for r in rows]


def _not_found(alert_id: str) -> Problem:
    return Problem(
        404,
        "Alert not found",
        f"No alert {alert_id!r} that you may see.",
        errors=[{"field": "alert_id", "rule": "not_found"}],
    )


async def _visible_alert(session: AsyncSession, staff: Staff, alert_id: str) -> AnalyticsAlert:
    statement = select(AnalyticsAlert).where(AnalyticsAlert.id == alert_id)
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    row = (await session.exec(statement)).first()
    if (
        row is None
        or not staff.can_access_site(row.site_id)
        or (staff.role == "therapist" and staff.subject != row.therapist_id)
    ):
        raise _not_found(alert_id)
    return row


def _acknowledged(row: AnalyticsAlert, now: datetime) -> Event[AllianceAlert]:
    return Event(
        ALLIANCE_ALERT,
        AllianceAlert(
            alert_id=row.id,
            episode_id=row.episode_id,
            site_id=row.site_id,
            therapist_id=row.therapist_id,
            status="acknowledged",
            kind=row.kind,
            severity=cast(Severity, row.severity),
            rule=row.rule,
            session_number=row.opened_session,
            respondent=row.respondent,
            inputs={},
            suggestion_code="none",
            at=now,
        ),
        source=SOURCE,
    )


@router.post(
    "/alerts/{alert_id}/acknowledge",
    dependencies=[audited("analytics", "alert.acknowledge", "alert", "alert_id")],
    response_model=AlertOut,
    summary="Acknowledge a risk alert (a clinician has seen it and acts): it closes, recording "
    "who and when. Acknowledging it again answers the same.",
)
async def acknowledge_alert(request: Request, alert_id: Id, staff: CurrentStaff) -> AlertOut:
    staff.require_role(*CLINICAL)
    runtime = _runtime(request)
    now = datetime.now(UTC)
    async with runtime.transaction() as session:
        row = await _visible_alert(session, staff, alert_id)
        if row.acknowledged_at is not None:
            return alert_out(row)  # already acknowledged: the same answer, nothing new
        if row.kind not in UNTIL_ACKNOWLEDGED:
            raise Problem(
                409,
                "Alert not acknowledged by staff",
                f"A {row.kind} alert closes when its rule no longer holds; only a risk alert "
                "stays open until a clinician acknowledges it.",
                errors=[{"field": "alert_id", "rule": "not_acknowledgeable"}],
            )
        if row.status != "open":
            raise Problem(
                409,
                "Alert already closed",
                f"This alert is {row.status} and was not acknowledged; there is nothing to "
                "acknowledge.",
                errors=[{"field": "alert_id", "rule": "already_closed"}],
            )
        # Only the request that closes the open alert records it and publishes the change.
        closed = await session.execute(
            update(ALERTS)
            .where(ALERTS.c.id == row.id, ALERTS.c.status == "open")
            .values(
                status="resolved",
                resolved_at=now,
                acknowledged_at=now,
                acknowledged_by=staff.subject[:128],
            )
        )
        if closed.rowcount == 1:  # type: ignore[attr-defined]
            await runtime.emit(session, _acknowledged(row, now))
        await session.refresh(row)
    return alert_out(row)


__all__ = ["AlertOut", "alert_out", "router"]
