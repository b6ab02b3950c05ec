"""Step 2: one attempt at one claimed delivery, on its channel — a signed webhook, or an email
or SMS to the address unsealed at this moment (an address never leaves this module). Rate
limits and withdrawn consent are decided here; the result is an :class:`Outcome`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from services.notify import domain
from services.notify.channels import Attempt, Channels, webhook_secrets
from services.notify.dependencies import NotifyDependencies
from services.notify.dispatch.claiming import Batch
from services.notify.mapping import client_quiet, contact_point
from services.notify.models import NotifyDelivery
from services.notify.sealing import fallback_owner


@dataclass
class Outcome:
    row: NotifyDelivery
    lease_id: str
    action: Literal["attempted", "deferred", "cancelled", "released"]
    attempt: Attempt | None = None
    defer_until: datetime | None = None
    reason: str | None = None
    quiet: domain.QuietHours | None = None


# The address to use, the person's quiet hours, and why not to send at all.
Address = tuple[str | None, domain.QuietHours | None, str | None]


class Sender:
    def __init__(self, deps: NotifyDependencies, channels: Channels) -> None:
        self.deps = deps
        self.channels = channels

    async def attempt(self, row: NotifyDelivery, batch: Batch) -> Outcome:
        lease = batch.lease_id
        if row.channel == "webhook":
            hook = batch.hooks.get(row.endpoint_id)
            if hook is None:
                return Outcome(row, lease, "attempted", Attempt("failed", None, "endpoint_removed"))
            key = self.deps.sealing.webhook_secret_key()
            secrets = webhook_secrets(hook, key, datetime.now(UTC))
            attempt = await self.channels.webhook(row.id, row.payload.encode(), hook, secrets)
            return Outcome(row, lease, "attempted", attempt)
        address, quiet, refusal = self.address(row, batch)
        if refusal is not None:
            return Outcome(row, lease, "cancelled", reason=refusal)
        if address is None:
            return Outcome(row, lease, "attempted", Attempt("failed", None, "contact_removed"))
        if not row.urgent:
            held = await self.rate_limited(row, batch)
            if held is not None:
                return Outcome(row, lease, "deferred", defer_until=held, quiet=quiet)
        content = json.loads(row.payload)
        text = str(content["text"])
        if row.sealed and row.notice_id:
            text = text.replace("{link}", self.deps.sealing.unseal_link(row.sealed, row.notice_id))
        if row.channel == "email":
            attempt = await self.channels.email(row.id, address, str(content["subject"]), text)
        else:
            attempt = await self.channels.sms(row.id, address, text)
        return Outcome(row, lease, "attempted", attempt, quiet=quiet)

    def address(self, row: NotifyDelivery, batch: Batch) -> Address:
        """The address to use, the person's quiet hours, and why not to send at all."""
        sealing = self.deps.sealing
        if row.recipient == "fallback:ops":
            return self.deps.settings.notify_ops_fallback_email, None, None
        if row.recipient == "fallback:site":
            fallback = batch.fallbacks.get(row.site_id)
            if fallback is None:
                return None, None, None
            owner = fallback_owner(row.site_id)
            return sealing.unseal_address(fallback.email_sealed, owner), None, None
        if row.recipient.startswith("client:"):
            client = batch.clients.get(row.endpoint_id)
            if client is None:
                return None, None, None
            if not client.consent:
                return None, None, "consent_withdrawn"
            sealed = client.email_sealed if row.channel == "email" else client.phone_sealed
            quiet = client_quiet(client)
            if sealed is None:
                return None, quiet, None
            key = batch.client_keys.get(client.respondent)
            return sealing.unseal_address(sealed, client.id, key), quiet, None
        staff = batch.staff.get(row.endpoint_id)
        if staff is None or not staff.active:
            return None, None, None
        sealed = staff.email_sealed if row.channel == "email" else staff.phone_sealed
        quiet = contact_point(staff).quiet
        if sealed is None:
            return None, quiet, None
        return sealing.unseal_address(sealed, staff.id), quiet, None

    async def rate_limited(self, row: NotifyDelivery, batch: Batch) -> datetime | None:
        """When a routine message may go, if its recipient had too many this hour."""
        policy = batch.policies.get(row.site_id)
        if policy is None:
            return None
        window, ends = domain.rate_window(datetime.now(UTC))
        count = await self.deps.fast.count_towards_limit(
            f"{row.site_id}:{row.recipient}", row.channel, window
        )
        if count is not None and count > policy.rate_limit.per_recipient_per_hour:
            return ends
        return None
