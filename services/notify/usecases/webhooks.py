"""A site's webhook endpoints: registration behind the SSRF guard, signing-secret rotation,
re-enabling one that was disabled (e.g. after 410 Gone)."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain, signing
from services.notify.dependencies import NotifyDependencies
from services.notify.errors import WebhookNotFound, refused_url
from services.notify.models import NotifyWebhook
from shared.auth import Staff


async def check_target(url: str, allow_private: bool) -> None:
    """An http(s) URL without credentials whose host resolves only to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise refused_url("scheme", "must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise refused_url("credentials", "must not carry credentials")
    try:
        port = parts.port
    except ValueError:
        raise refused_url("port", "has an invalid port") from None
    if allow_private:
        return
    try:
        addresses = {
            info[4][0]
            for info in await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port or (443 if parts.scheme == "https" else 80)
            )
        }
    except (OSError, UnicodeError):
        raise refused_url("unresolvable", f"host {parts.hostname!r} does not resolve") from None
    for address in addresses:
        if domain.is_private_address(str(ipaddress.ip_address(str(address).split("%")[0]))):
            raise refused_url(
                "private_address",
                f"{parts.hostname} resolves to a private, loopback or link-local "
                "address; webhooks must reach a public endpoint",
            )


async def register_webhook(
    deps: NotifyDependencies, site_id: str, url: str
) -> tuple[NotifyWebhook, str]:
    """A new endpoint and its signing secret (shown once). Its own transaction, opened after
    the address was checked (a DNS lookup is not made while holding one)."""
    await check_target(url, deps.settings.allow_private_webhooks)
    webhook_id = str(uuid.uuid4())
    secret = signing.new_secret()
    row = NotifyWebhook(
        id=webhook_id,
        site_id=site_id,
        url=url,
        secret_sealed=deps.sealing.seal_webhook_secret(secret, webhook_id),
        created_at=datetime.now(UTC),
    )
    async with deps.runtime.transaction() as session:
        session.add(row)
    deps.policies.forget(site_id)
    return row, secret


async def list_webhooks(
    session: AsyncSession, site_id: str, limit: int, offset: int
) -> Sequence[NotifyWebhook]:
    return (
        await session.exec(
            select(NotifyWebhook)
            .where(NotifyWebhook.site_id == site_id)
            .order_by(col(NotifyWebhook.created_at))
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def own_webhook(session: AsyncSession, webhook_id: str, staff: Staff) -> NotifyWebhook:
    row = await session.get(NotifyWebhook, webhook_id)
    if row is None or not staff.can_access_site(row.site_id):
        raise WebhookNotFound(
            f"No webhook endpoint {webhook_id!r} at your sites.",
            errors=[{"field": "webhook_id", "rule": "not_found"}],
        )
    return row


async def rotate_secret(
    deps: NotifyDependencies, session: AsyncSession, staff: Staff, webhook_id: str
) -> tuple[NotifyWebhook, str]:
    """A new secret (shown once); the previous one keeps signing for the rotation period."""
    secret = signing.new_secret()
    row = await own_webhook(session, webhook_id, staff)
    row.previous_secret_sealed = row.secret_sealed
    row.previous_secret_until = datetime.now(UTC) + timedelta(
        seconds=deps.settings.notify_secret_rotation_seconds
    )
    row.secret_sealed = deps.sealing.seal_webhook_secret(secret, row.id)
    session.add(row)
    return row, secret


async def enable_webhook(deps: NotifyDependencies, staff: Staff, webhook_id: str) -> NotifyWebhook:
    """Re-enable an endpoint once its URL passes the guard again. Two transactions: the
    address is checked (a DNS lookup) without holding one."""
    runtime = deps.runtime
    async with runtime.sessionmaker() as session:
        row = await own_webhook(session, webhook_id, staff)
    await check_target(row.url, deps.settings.allow_private_webhooks)
    async with runtime.transaction() as session:
        row = await own_webhook(session, webhook_id, staff)
        row.active, row.disabled_at, row.disabled_reason = True, None, None
        session.add(row)
    deps.policies.forget(row.site_id)
    return row
