"""Notify's refusals, each titled as its answer says (``shared.errors`` kinds: the HTTP edge
turns them into problem+json with the kind's status)."""

from __future__ import annotations

from shared.errors import Conflict, Invalid, NotFound


class WebhookUrlRefused(Invalid):
    title = "Webhook URL refused"


class WebhookNotFound(NotFound):
    title = "Webhook not found"


class DeliveryNotFound(NotFound):
    title = "Delivery not found"


class DeliveryNotFailed(Conflict):
    title = "Delivery not failed"


class ContactNotFound(NotFound):
    title = "Contact not found"


def refused_url(rule: str, why: str) -> WebhookUrlRefused:
    return WebhookUrlRefused(f"url: {why}", errors=[{"field": "url", "rule": rule}])


def delivery_not_found(delivery_id: str) -> DeliveryNotFound:
    return DeliveryNotFound(
        f"No delivery {delivery_id!r} at your sites.",
        errors=[{"field": "delivery_id", "rule": "not_found"}],
    )
