"""The delivery rows notify writes: one per message (recipient × channel), with its unique
delivery key, its payload (a webhook body, or the subject and text of an email or SMS — never
an address) and when it is due. Built here, inserted by the use cases; sending happens later,
in the dispatcher."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.notify import domain, undelivered
from services.notify.mapping import client_quiet
from services.notify.models import NotifyClientContact, NotifyNotice
from services.notify.policy import RoutingPolicy


def webhook_body(
    delivery_id: str,
    notice: domain.NoticeSpec,
    planned: domain.Planned,
    now: datetime,
    **extra: Any,
) -> str:
    recipients = [
        {"role": r, **({"staff_id": notice.therapist_id} if r == "therapist" else {})}
        for r in planned.roles
    ]
    body = {
        "type": notice.data.get("type", "alliance.alert"),
        "id": delivery_id,
        "timestamp": now.isoformat(),
        "source_type": notice.source_type,
        "urgent": planned.urgent,
        "recipients": recipients,
        "acknowledge": f"/notify/deliveries/{delivery_id}/ack",
        **extra,
        "data": {k: v for k, v in notice.data.items() if k != "type"},
    }
    return json.dumps(body, separators=(",", ":"), default=str)


def message_payload(message: domain.Message) -> str:
    return json.dumps({"subject": message.subject, "text": message.text})


def staff_text(kind: str, planned: domain.Planned, count: int = 1) -> str:
    return message_payload(domain.staff_message(kind, planned.urgent, count))


def message_row(
    *,
    key: str,
    recipient: str,
    channel: str,
    endpoint_id: str,
    recipient_role: str,
    payload: str,
    source_event_id: str,
    site_id: str,
    kind: str,
    due: datetime,
    now: datetime,
    notice_id: str | None = None,
    urgent: bool = False,
    status: str = "pending",
    delivery_id: str | None = None,
    alert_id: str | None = None,
    alert_position: int | None = None,
) -> dict[str, Any]:
    """One delivery row; its key (``key`` × recipient × channel) makes it exist once."""
    return {
        "id": delivery_id or str(uuid.uuid4()),
        "delivery_key": domain.delivery_key(key, recipient, channel),
        "source_event_id": source_event_id,
        "site_id": site_id,
        "channel": channel,
        "endpoint_id": endpoint_id,
        "recipient_role": recipient_role,
        "recipient": recipient,
        "payload": payload,
        "status": status,
        "attempts": 0,
        "next_attempt_at": due,
        "created_at": now,
        "kind": kind,
        "notice_id": notice_id,
        "urgent": urgent,
        "alert_id": alert_id,
        "alert_position": alert_position,
    }


def planned_rows(
    notice: domain.NoticeSpec,
    planned: Sequence[domain.Planned],
    policy: RoutingPolicy,
    now: datetime,
    *,
    notice_id: str | None,
    key_base: str,
    delivery_kind: str,
    **webhook_extra: Any,
) -> list[dict[str, Any]]:
    """The rows of a notice's planned messages: webhooks carry the notice's pseudonymous data,
    email and SMS only a wording without clinical detail; digest items wait for their window."""
    rows = []
    for p in planned:
        delivery_id = str(uuid.uuid4())
        if p.channel == "webhook":
            payload = webhook_body(delivery_id, notice, p, now, **webhook_extra)
        else:
            # An escalation's email says why it comes (an urgent one reads as urgent).
            payload = staff_text("escalation" if delivery_kind == "escalation" else notice.kind, p)
        digest = p.mode == "digest"
        rows.append(
            message_row(
                delivery_id=delivery_id,
                key=key_base,
                recipient=p.recipient,
                channel=p.channel,
                endpoint_id=p.endpoint_id,
                recipient_role="front_end" if p.channel == "webhook" else p.roles[0],
                payload=payload,
                source_event_id=notice.source_event_id,
                site_id=notice.site_id,
                kind=delivery_kind,
                due=domain.digest_due(now, policy.digest, policy.timezone)
                if digest
                else domain.not_before(now, p.urgent, p.quiet),
                now=now,
                notice_id=notice_id,
                urgent=p.urgent,
                status="digest" if digest else "pending",
                # A webhook of an alert's step waits for the earlier steps' to its endpoint.
                alert_id=notice.alert_id if p.channel == "webhook" else None,
                alert_position=notice.position if p.channel == "webhook" else None,
            )
        )
    return rows


def notice_rows(
    notice: domain.NoticeSpec,
    planned: list[domain.Planned],
    policy: RoutingPolicy,
    notice_id: str,
) -> list[dict[str, Any]]:
    """A notice's deliveries: the same keys whenever they are made (at once, or later when a
    route appears), so each message exists once."""
    return planned_rows(
        notice,
        planned,
        policy,
        datetime.now(UTC),
        notice_id=notice_id,
        key_base=notice.key,
        delivery_kind=domain.delivery_kind(notice.kind),
    )


def invitation_row(
    *,
    invitation_id: str,
    key: str,
    kind: str,
    site_id: str,
    respondent: str,
    role: str,
    contact: NotifyClientContact,
    link_sealed: str,
    expires_at: datetime,
    source_event_id: str,
    now: datetime,
) -> dict[str, Any]:
    """An invitation (or its reminder) to a client-side member; the link itself is sealed
    beside the payload and put in at send time."""
    message = domain.invitation_message("{link}", expires_at, reminder=kind == "reminder")
    return {
        **message_row(
            key=key,
            recipient=f"client:{respondent}",
            channel=contact.channel,
            endpoint_id=contact.id,
            recipient_role=role,
            payload=message_payload(message),
            source_event_id=source_event_id,
            site_id=site_id,
            kind=kind,
            due=domain.not_before(now, False, client_quiet(contact)),
            now=now,
            notice_id=invitation_id,
        ),
        "sealed": link_sealed,
    }


def fallback_row(
    notice: NotifyNotice, target: undelivered.Fallback, now: datetime
) -> dict[str, Any]:
    """The one email to the fallback address (its key makes it once per notice). The address
    is read at send time: the site's (sealed) or the deployment's setting."""
    return message_row(
        key=f"fallback:{notice.id}",
        recipient=f"fallback:{target}",
        channel="email",
        endpoint_id=notice.site_id if target == "site" else "ops",
        recipient_role="fallback",
        payload=message_payload(undelivered.fallback_message(notice.site_id)),
        source_event_id=notice.source_event_id,
        site_id=notice.site_id,
        kind="fallback",
        due=now,
        now=now,
        notice_id=notice.id,
        urgent=True,
    )
