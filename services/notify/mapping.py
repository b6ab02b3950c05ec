"""Rows ↔ domain objects ↔ response models: the one place notify converts between them.

Answers never carry personal data: contacts say only whether an address is on file
(``has_email``), deliveries name recipients by role and staff id or pseudonym, never by
address, and carry no message bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.notify import domain
from services.notify.models import (
    NotifyClientContact,
    NotifyDelivery,
    NotifyNotice,
    NotifySiteFallback,
    NotifyStaffContact,
    NotifyWebhook,
)
from services.notify.policy import ClockTime, RoutingPolicy
from shared.contracts import (
    NOTIFICATION_ACKNOWLEDGED,
    AllianceAlert,
    MatchConfirmed,
    MatchProposed,
    NotificationAcknowledged,
    RiskFlagged,
)
from shared.events import Event

RISK_RULE = "rule-1-risk"
RISK_SUGGESTION = "contact_client_now_and_assess_risk"
WaitingStatus = Literal["waiting", "routed"]
Escalation = Literal["none", "cancelled", "already_escalated"]

# -- rows → domain objects -------------------------------------------------------------------


def quiet_hours(start: str | None, end: str | None, timezone: str) -> domain.QuietHours | None:
    return domain.QuietHours.parse(start, end, timezone) if start and end else None


def contact_point(row: NotifyStaffContact) -> domain.ContactPoint:
    return domain.ContactPoint(
        id=row.id,
        role=row.role,
        staff_id=row.staff_id,
        has_email=row.email_sealed is not None,
        has_phone=row.phone_sealed is not None,
        quiet=quiet_hours(row.quiet_start, row.quiet_end, row.timezone),
    )


def client_quiet(contact: NotifyClientContact) -> domain.QuietHours | None:
    return quiet_hours(contact.quiet_start, contact.quiet_end, contact.timezone)


def spec_of(notice: NotifyNotice) -> domain.NoticeSpec:
    return domain.NoticeSpec(
        key=notice.notice_key,
        site_id=notice.site_id,
        kind=notice.kind,
        severity=notice.severity,
        source_event_id=notice.source_event_id,
        source_type=notice.source_type,
        data=json.loads(notice.data),
        episode_id=notice.episode_id,
        therapist_id=notice.therapist_id,
        alert_id=alert_of(notice.source_type, json.loads(notice.data)),
    )


def alert_of(source_type: str, data: dict[str, Any]) -> str | None:
    """The alert a notice is about (its deliveries keep the order of the alert's steps)."""
    alert_id = data.get("alert_id") if source_type in {"alliance.alert", "risk.flagged"} else None
    return alert_id if isinstance(alert_id, str) else None


# -- events → notices --------------------------------------------------------------------------


def alert_notice(event_id: str, alert: AllianceAlert) -> domain.NoticeSpec:
    instrument = alert.inputs.get("instrument")
    if alert.kind == domain.RISK and alert.respondent and isinstance(instrument, str):
        key = domain.risk_notice_key(
            alert.episode_id, alert.session_number, alert.respondent, instrument
        )
    else:
        key = domain.alert_notice_key(alert.alert_id)
    return domain.NoticeSpec(
        key=key,
        site_id=alert.site_id,
        kind=alert.kind,
        severity=alert.severity,
        source_event_id=event_id,
        source_type="alliance.alert",
        data=alert.model_dump(mode="json"),
        episode_id=alert.episode_id,
        therapist_id=alert.therapist_id,
        alert_id=alert.alert_id,
    )


def alert_step_notice(event_id: str, alert: AllianceAlert) -> domain.NoticeSpec:
    """A later step of an alert's life (acknowledged, action_recorded, resolved, closed), for
    the front-ends that follow it: the event's data, so ``status`` names the step."""
    suffix = f":{event_id}" if alert.status == "action_recorded" else ""
    return domain.NoticeSpec(
        key=f"{domain.alert_notice_key(alert.alert_id)}:{alert.status}{suffix}",
        site_id=alert.site_id,
        kind=alert.kind,
        severity=alert.severity,
        source_event_id=event_id,
        source_type="alliance.alert",
        data=alert.model_dump(mode="json"),
        episode_id=alert.episode_id,
        therapist_id=alert.therapist_id,
        step=alert.status,
        alert_id=alert.alert_id,
    )


def risk_notice(event_id: str, risk: RiskFlagged) -> domain.NoticeSpec:
    """The same shape as analytics' rule-1 alert, so a front-end reads one format whichever
    event reached notify first."""
    inputs: dict[str, Any] = {"instrument": risk.instrument}
    inputs.update({f"item_{k}": float(v) for k, v in sorted(risk.risk_items.items()) if v > 0})
    inputs["threshold"] = 0  # as analytics' rule 1 states it
    return domain.NoticeSpec(
        key=domain.risk_notice_key(
            risk.episode_id, risk.session_number, risk.respondent, risk.instrument
        ),
        site_id=risk.site_id,
        kind=domain.RISK,
        severity="urgent",
        source_event_id=event_id,
        source_type="risk.flagged",
        data={
            "alert_id": risk.response_id,
            "episode_id": risk.episode_id,
            "site_id": risk.site_id,
            "therapist_id": risk.therapist_id,
            "status": "opened",
            "kind": domain.RISK,
            "severity": "urgent",
            "rule": RISK_RULE,
            "session_number": risk.session_number,
            "respondent": risk.respondent,
            "inputs": inputs,
            "suggestion_code": RISK_SUGGESTION,
            "at": risk.answered_at.isoformat(),
        },
        episode_id=risk.episode_id,
        therapist_id=risk.therapist_id,
    )


def match_proposed_notice(event_id: str, proposed: MatchProposed) -> domain.NoticeSpec:
    return domain.NoticeSpec(
        key=domain.event_notice_key("match_proposed", event_id),
        site_id=proposed.site_id,
        kind="match_proposed",
        severity="routine",
        source_event_id=event_id,
        source_type="match.proposed",
        data={"type": "match.proposed", **proposed.model_dump(mode="json")},
    )


def match_confirmed_notice(event_id: str, confirmed: MatchConfirmed) -> domain.NoticeSpec:
    return domain.NoticeSpec(
        key=domain.event_notice_key("match_confirmed", event_id),
        site_id=confirmed.site_id,
        kind="match_confirmed",
        severity="routine",
        source_event_id=event_id,
        source_type="match.confirmed",
        data={
            "type": "match.confirmed",
            **confirmed.model_dump(mode="json", exclude={"members"}),
        },
        episode_id=confirmed.episode_id,
        therapist_id=confirmed.therapist_id,
    )


def episode_values(confirmed: MatchConfirmed) -> dict[str, Any]:
    """The episode row a confirmed match stands for (its members, for invitations)."""
    members = [m.model_dump() for m in confirmed.members] or [
        {"respondent": confirmed.client, "role": "client"}
    ]
    return {
        "episode_id": confirmed.episode_id,
        "site_id": confirmed.site_id,
        "therapist_id": confirmed.therapist_id,
        "members": members,
        "confirmed_at": confirmed.confirmed_at,
    }


# -- response models ---------------------------------------------------------------------------


class WebhookOut(BaseModel):
    id: str
    site_id: str
    url: str
    active: bool
    secret: str | None = Field(default=None, description="Shown once, at registration.")
    disabled_at: datetime | None = None
    disabled_reason: str | None = Field(
        default=None, description="gone: the endpoint answered 410 and was disabled"
    )
    previous_secret_valid_until: datetime | None = Field(
        default=None, description="During a rotation, until when the old secret also signs."
    )


class DeliveryOut(BaseModel):
    """One message in the log. No personal data: recipients are roles with staff ids or
    pseudonyms, never addresses; no message bodies."""

    id: str
    source_event_id: str
    site_id: str
    kind: str
    channel: str
    recipient_role: str
    recipient: str
    urgent: bool
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    notice_id: str | None
    digest_id: str | None


class AckOut(BaseModel):
    delivery_id: str
    acknowledged_at: datetime
    acknowledged_by: str
    notice_id: str | None
    escalation: Escalation


class PolicyOut(BaseModel):
    site_id: str
    source: Literal["site", "configured", "default"] = Field(
        description="site: stored for this site through the API; configured: the deployment's "
        "policy file; default: the checked-in default"
    )
    policy: RoutingPolicy
    updated_at: datetime | None = None
    updated_by: str | None = None


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: ClockTime = Field(description="local time quiet hours begin, HH:MM (22:00)")
    end: ClockTime = Field(description="local time they end, HH:MM (07:00; may be next day)")


class StaffContactOut(BaseModel):
    id: str
    site_id: str
    role: str
    staff_id: str
    has_email: bool
    has_phone: bool
    timezone: str
    quiet_hours: QuietHoursIn | None
    active: bool
    updated_at: datetime


class ClientContactOut(BaseModel):
    site_id: str
    respondent: str
    channel: str
    consent: bool
    consent_at: datetime | None
    has_email: bool
    has_phone: bool
    timezone: str
    quiet_hours: QuietHoursIn | None
    updated_at: datetime


class UndeliveredOut(BaseModel):
    """A notice no channel of its site could carry. Episode, therapist and session are shown
    to clinical leads (who act on the client's behalf); site admins see what to set up."""

    notice_id: str
    site_id: str
    kind: str
    severity: str
    urgent: bool
    source_type: str
    reason: str = Field(
        description="site_not_set_up: no policy, webhook or contact for the site; "
        "no_channel_for_recipients: nothing reaches the people this notice is for"
    )
    status: WaitingStatus = Field(
        description="waiting: for a webhook or contact; routed: delivered once one existed"
    )
    since: datetime
    routed_at: datetime | None
    fallback: Literal["site", "ops"] | None = Field(
        description="who was told of an urgent one: the site's fallback address or ops"
    )
    fallback_at: datetime | None
    acknowledged_at: datetime | None
    episode_id: str | None = None
    therapist_id: str | None = None
    session_number: int | None = None


class FallbackOut(BaseModel):
    site_id: str
    has_email: bool = Field(description="the site has a fallback address (never shown)")
    ops_fallback: bool = Field(
        description="the deployment's ops fallback hears of it when the site has none"
    )
    updated_at: datetime | None = None
    updated_by: str | None = None


# -- rows → response models --------------------------------------------------------------------


def webhook_out(row: NotifyWebhook, secret: str | None = None) -> WebhookOut:
    rotating = row.previous_secret_until
    return WebhookOut(
        id=row.id,
        site_id=row.site_id,
        url=row.url,
        active=row.active,
        secret=secret,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        previous_secret_valid_until=rotating
        if rotating is not None and rotating > datetime.now(UTC)
        else None,
    )


def delivery_out(row: NotifyDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


def quiet_out(start: str | None, end: str | None) -> QuietHoursIn | None:
    return QuietHoursIn(start=start, end=end) if start and end else None


def staff_contact_out(row: NotifyStaffContact) -> StaffContactOut:
    return StaffContactOut(
        id=row.id,
        site_id=row.site_id,
        role=row.role,
        staff_id=row.staff_id,
        has_email=row.email_sealed is not None,
        has_phone=row.phone_sealed is not None,
        timezone=row.timezone,
        quiet_hours=quiet_out(row.quiet_start, row.quiet_end),
        active=row.active,
        updated_at=row.updated_at,
    )


def client_contact_out(row: NotifyClientContact) -> ClientContactOut:
    return ClientContactOut(
        site_id=row.site_id,
        respondent=row.respondent,
        channel=row.channel,
        consent=row.consent,
        consent_at=row.consent_at,
        has_email=row.email_sealed is not None,
        has_phone=row.phone_sealed is not None,
        timezone=row.timezone,
        quiet_hours=quiet_out(row.quiet_start, row.quiet_end),
        updated_at=row.updated_at,
    )


def undelivered_out(row: NotifyNotice, clinical: bool) -> UndeliveredOut:
    session_number = json.loads(row.data).get("session_number") if clinical else None
    return UndeliveredOut(
        notice_id=row.id,
        site_id=row.site_id,
        kind=row.kind,
        severity=row.severity,
        urgent=row.urgent,
        source_type=row.source_type,
        reason=row.undeliverable_reason or "",
        status="waiting" if row.awaiting_route_since is not None else "routed",
        since=row.created_at,
        routed_at=row.routed_at,
        fallback=row.fallback_to,
        fallback_at=row.fallback_at,
        acknowledged_at=row.acknowledged_at,
        episode_id=row.episode_id if clinical else None,
        therapist_id=row.therapist_id if clinical else None,
        session_number=session_number if isinstance(session_number, int) else None,
    )


def fallback_out(
    site_id: str, row: NotifySiteFallback | None, ops_fallback: str | None
) -> FallbackOut:
    return FallbackOut(
        site_id=site_id,
        has_email=row is not None,
        ops_fallback=ops_fallback is not None,
        updated_at=row.updated_at if row else None,
        updated_by=row.updated_by if row else None,
    )


def alert_identity(notice: NotifyNotice | None) -> dict[str, Any] | None:
    """How analytics finds the alert a notice is about (None for other notices, e.g. a match):
    its id, or for a risk notice that came from ``risk.flagged`` (which names the response, not
    analytics' alert) its episode, session, respondent and instrument. Ids and codes only."""
    if (
        notice is None
        or notice.source_type not in ("alliance.alert", "risk.flagged")
        or notice.episode_id is None
    ):
        return None
    data = json.loads(notice.data)
    inputs = data.get("inputs") or {}
    instrument = data.get("instrument") or inputs.get("instrument")
    return {
        "episode_id": notice.episode_id,
        "kind": notice.kind,
        "alert_id": data.get("alert_id") if notice.source_type == "alliance.alert" else None,
        "session_number": data.get("session_number"),
        "respondent": data.get("respondent"),
        "instrument": instrument if isinstance(instrument, str) else None,
    }


def alert_seen(
    delivery_id: str, notice: NotifyNotice, now: datetime
) -> Event[NotificationAcknowledged] | None:
    """``notification.acknowledged`` for the first acknowledgement of an alert's notice (None
    for other notices, e.g. a match): ids and codes only, never who acknowledged it."""
    identity = alert_identity(notice)
    if identity is None:
        return None
    return Event(
        NOTIFICATION_ACKNOWLEDGED,
        NotificationAcknowledged(
            delivery_id=delivery_id,
            notice_id=notice.id,
            site_id=notice.site_id,
            **identity,
            acknowledged_at=now,
        ),
        source="/rapport/notify",
    )
