"""The alerts at a site (open ones by default) and a clinician's acknowledgement of a risk
alert, which stays open until someone acknowledges it. A therapist sees and acknowledges only
their own clients' alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Header, Query

from services.analytics.dependencies import Deps
from services.analytics.mapping import (
    ActionIn,
    ActionOut,
    AlertOut,
    CloseIn,
    action_out,
    alert_out,
)
from services.analytics.routes.roles import CLINICAL
from services.analytics.usecases import alerts, follow_up
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import ALERT_KINDS, Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.vocabulary import one_of

IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]
if TYPE_CHECKING:
    AlertKind = str
else:  # an enum in the OpenAPI; an unknown kind is a 422 naming the valid ones
    AlertKind = one_of(ALERT_KINDS, "alert kind")

router = APIRouter()


@router.get(
    "/alerts",
    dependencies=[audited("analytics", "alerts.read", "alerts")],
    response_model=list[AlertOut],
    summary="Alerts at one site (open ones by default, newest first)",
)
async def list_alerts(
    deps: Deps,
    staff: CurrentStaff,
    site_id: Id,
    status: Literal["open", "resolved", "closed", "all"] = "open",
    kind: Annotated[AlertKind | None, Query()] = None,
    therapist_id: Id | None = None,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[AlertOut]:
    staff.require_role(*CLINICAL)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        rows = await alerts.alerts_at_site(
            session, staff, site_id, status, kind, therapist_id, limit, offset
        )
    return [alert_out(r) for r in rows]


@router.post(
    "/alerts/{alert_id}/acknowledge",
    dependencies=[audited("analytics", "alert.acknowledge", "alert", "alert_id")],
    response_model=AlertOut,
    summary="Acknowledge a risk alert (a clinician has seen it and acts): it closes, recording "
    "who and when. Acknowledging it again answers the same.",
)
async def acknowledge_alert(deps: Deps, alert_id: Id, staff: CurrentStaff) -> AlertOut:
    staff.require_role(*CLINICAL)
    now = datetime.now(UTC)
    async with deps.runtime.transaction() as session:
        row = await alerts.acknowledge_alert(deps, session, staff, alert_id, now)
    return alert_out(row)


@router.post(
    "/alerts/{alert_id}/actions",
    dependencies=[audited("analytics", "alert.action", "alert", "alert_id")],
    response_model=ActionOut,
    status_code=201,
    summary="Record what was done about an alert: one of the site's coded actions, by whom and "
    "when, with an optional note (sealed under the client's key, on no topic). The same "
    "Idempotency-Key again answers the action recorded the first time.",
)
async def record_action(
    deps: Deps,
    alert_id: Id,
    body: ActionIn,
    staff: CurrentStaff,
    idempotency_key: IdempotencyKey = None,
) -> ActionOut:
    staff.require_role(*CLINICAL)
    now = datetime.now(UTC)
    async with deps.runtime.transaction() as session:
        done = await follow_up.record_action(
            deps, session, staff, alert_id, body.code, idempotency_key, now, body.note
        )
    return action_out(done.action, done.alert, done.note)


@router.post(
    "/alerts/{alert_id}/close",
    dependencies=[audited("analytics", "alert.close", "alert", "alert_id")],
    response_model=AlertOut,
    summary="Close an alert with a reason (a risk alert only once an action is recorded on it)",
)
async def close_alert(deps: Deps, alert_id: Id, body: CloseIn, staff: CurrentStaff) -> AlertOut:
    staff.require_role(*CLINICAL)
    now = datetime.now(UTC)
    async with deps.runtime.transaction() as session:
        row = await follow_up.close_alert(deps, session, staff, alert_id, body.reason, now)
    return alert_out(row)
