"""Analytics HTTP routes for staff front-ends."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlmodel import col, select

from services.analytics.models import AnalyticsAlert
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.runtime import runtime_of

router = APIRouter(prefix="/analytics", tags=["analytics"])


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
    opened_session: int
    resolved_session: int | None
    inputs: dict[str, float | int | str | bool | None]
    suggestion_code: str
    opened_at: datetime


@router.get("/alerts", response_model=list[AlertOut], summary="Alerts at one site")
async def list_alerts(
    request: Request,
    staff: CurrentStaff,
    site_id: Id,
    status: str = Query(default="open", pattern="^(open|resolved|all)$"),
    limit: int = Query(default=100, ge=1, le=500),
) -> list[AlertOut]:
    staff.require_role("therapist", "supervisor", "clinical_lead")
    staff.require_site(site_id)
    statement = select(AnalyticsAlert).where(AnalyticsAlert.site_id == site_id)
    if status != "all":
        statement = statement.where(AnalyticsAlert.status == status)
    if staff.role == "therapist":
        statement = statement.where(AnalyticsAlert.therapist_id == staff.subject)
    statement = statement.order_by(col(AnalyticsAlert.opened_at).desc()).limit(limit)
    async with runtime_of(request, "analytics").sessionmaker() as session:
        rows = (await session.exec(statement)).all()
    return [
        AlertOut(
            alert_id=r.id,
            episode_id=r.episode_id,
            site_id=r.site_id,
            therapist_id=r.therapist_id,
            kind=r.kind,
            severity=r.severity,
            rule=r.rule,
            status=r.status,
            respondent=r.respondent,
            opened_session=r.opened_session,
            resolved_session=r.resolved_session,
            inputs=r.inputs,
            suggestion_code=r.suggestion_code,
            opened_at=r.opened_at,
        )
        for r in rows
    ]
