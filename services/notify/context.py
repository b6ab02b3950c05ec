"""What notify's handlers, scheduler, dispatcher and routes share while the service runs:
the policies, the Redis fast path, the keys that seal personal data, and the dispatcher's wake-up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import exists, literal, union_all
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain
from services.notify.models import (
    CLIENT_KEYS,
    NotifyClientContact,
    NotifyPolicy,
    NotifyStaffContact,
    NotifyWebhook,
)
from services.notify.policy import PolicyBook, RoutingPolicy, load_policy_file
from services.notify.undelivered import Looked
from shared.crypto import (
    derive_key,
    is_client_sealed,
    seal,
    seal_for_client,
    unseal,
    unseal_for_client,
)
from shared.erasure import ClientKeys
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)

FAST_PATH_TTL_SECONDS = 7 * 86_400


class FastPath:
    """Redis beside PostgreSQL for what the dispatcher asks before every send: "did this
    delivery already reach its endpoint?" (a mark written the moment the endpoint accepted it,
    before the database records it), and per-recipient rate counters. Redis is only ever a
    shortcut: when it is down or has forgotten, the delivery states and unique delivery keys
    in PostgreSQL decide (a Redis outage costs at most a resend with the same webhook-id after
    a crash, never a loss)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}notify:"

    async def _exists(self, keys: list[str]) -> list[bool]:
        if not keys:
            return []
        try:
            values = await self.redis.mget(keys)
        except Exception as error:  # a shortcut only: fall back to the database
            log.warning("redis fast path unavailable", error=type(error).__name__)
            return [False] * len(keys)
        return [v is not None for v in values]

    async def already_sent(self, delivery_ids: list[str]) -> set[str]:
        found = await self._exists([f"{self.prefix}sent:{i}" for i in delivery_ids])
        return {i for i, hit in zip(delivery_ids, found, strict=True) if hit}

    async def mark_sent(self, delivery_id: str) -> None:
        try:
            await self.redis.set(f"{self.prefix}sent:{delivery_id}", b"1", ex=FAST_PATH_TTL_SECONDS)
        except Exception as error:
            log.warning("redis fast path unavailable", error=type(error).__name__)

    async def count_towards_limit(self, recipient: str, channel: str, window: int) -> int | None:
        """Messages to this recipient on this channel in this hour window (None: Redis down)."""
        key = f"{self.prefix}rate:{recipient}:{channel}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 3_700)
                count, _ = await pipe.execute()
        except Exception as error:
            log.warning("redis rate limit unavailable; not limiting", error=type(error).__name__)
            return None
        return int(count)


def contact_point(row: NotifyStaffContact) -> domain.ContactPoint:
    quiet = (
        domain.QuietHours.parse(row.quiet_start, row.quiet_end, row.timezone)
        if row.quiet_start and row.quiet_end
        else None
    )
    return domain.ContactPoint(
        id=row.id,
        role=row.role,
        staff_id=row.staff_id,
        has_email=row.email_sealed is not None,
        has_phone=row.phone_sealed is not None,
        quiet=quiet,
    )


def fallback_owner(site_id: str) -> str:
    """What a site's fallback address is sealed to (its associated data)."""
    return f"fallback:{site_id}"


@dataclass(frozen=True)
class SiteRouting:
    """What routing a notice of a site needs: its policy, who can be reached, and where."""

    policy: RoutingPolicy
    contacts: list[domain.ContactPoint]  # active staff contacts, every role
    endpoints: list[str]  # active webhook endpoints
    set_up: bool = True  # anything registered for the site (a policy, a webhook or a contact)


@dataclass
class Policies:
    """Resolves a site's policy (stored, else configured, else default), its contacts and
    endpoints, and whether anything is set up for the site at all (a policy, a webhook or a
    contact). A site nobody set up gets the default policy and no channel: its notices are
    recorded as undeliverable and wait for a route (``undelivered``), never dead-lettered.

    A site's routing is cached for ``ttl`` seconds, so a burst of alerts does not re-read it
    for every event: a change made through this replica's API is seen at once, one made
    through another replica (or a 410 there) within ``ttl`` seconds."""

    book: PolicyBook
    ttl: float = 2.0
    _cache: dict[str, tuple[float, SiteRouting]] = field(default_factory=dict)

    def forget(self, site_id: str) -> None:
        self._cache.pop(site_id, None)

    async def stored(self, session: AsyncSession, site_id: str) -> RoutingPolicy | None:
        row = await session.get(NotifyPolicy, site_id)
        return None if row is None else RoutingPolicy.model_validate_json(row.document)

    async def known(self, session: AsyncSession, site_id: str) -> bool:
        """A site is known once anything is set up for it: a policy (stored or configured),
        a webhook, or a staff or client contact."""
        if self.book.knows(site_id):
            return True
        probes = union_all(
            select(literal(1)).where(exists().where(col(NotifyPolicy.site_id) == site_id)),
            select(literal(1)).where(exists().where(col(NotifyWebhook.site_id) == site_id)),
            select(literal(1)).where(exists().where(col(NotifyStaffContact.site_id) == site_id)),
            select(literal(1)).where(exists().where(col(NotifyClientContact.site_id) == site_id)),
        )
        return (await session.execute(probes)).first() is not None

    async def routing(self, session: AsyncSession, site_id: str) -> SiteRouting:
        """The site's routing; for a site nobody set up, the configured (default) policy with
        no contact and no endpoint."""
        cached = self._cache.get(site_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        policy = await self.stored(session, site_id)
        set_up = policy is not None or await self.known(session, site_id)
        if policy is None:
            policy = self.book.configured_for(site_id)
        contacts = (
            await session.exec(
                select(NotifyStaffContact).where(
                    NotifyStaffContact.site_id == site_id,
                    col(NotifyStaffContact.active).is_(True),
                )
            )
        ).all()
        endpoints = (
            await session.exec(
                select(NotifyWebhook.id).where(
                    NotifyWebhook.site_id == site_id, col(NotifyWebhook.active).is_(True)
                )
            )
        ).all()
        routing = SiteRouting(
            policy, [contact_point(c) for c in contacts], sorted(endpoints), set_up
        )
        self._cache[site_id] = (time.monotonic() + self.ttl, routing)
        return routing

    async def for_site(self, session: AsyncSession, site_id: str) -> RoutingPolicy:
        return (await self.routing(session, site_id)).policy


class NotifyContext:
    """Filled in when the runtime is built (``app.definition``'s ``on_init``)."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self._settings: Settings | None = None
        self._fast: FastPath | None = None
        self._policies: Policies | None = None
        self.runtime: Any = None
        # The last look at each site's undeliverable notices (only spares needless work:
        # the notices' own rows say what waits).
        self.looked: dict[str, Looked] = {}

    def bind(self, runtime: Any) -> None:
        settings: Settings = runtime.settings
        self.runtime = runtime
        self._settings = settings
        self._fast = FastPath(runtime.redis, settings.topic_prefix)
        configured = (
            load_policy_file(settings.notify_policy_file) if settings.notify_policy_file else None
        )
        self._policies = Policies(PolicyBook(configured))

    @property
    def settings(self) -> Settings:
        assert self._settings is not None, "notify context used before the runtime was built"
        return self._settings

    @property
    def fast(self) -> FastPath:
        assert self._fast is not None
        return self._fast

    @property
    def policies(self) -> Policies:
        assert self._policies is not None
        return self._policies

    def wake_dispatcher(self) -> None:
        self.wake.set()

    @property
    def channels(self) -> frozenset[str]:
        """The channels this deployment can send on: webhooks always; email with an SMTP host;
        SMS with a provider URL. Messages are planned on these only (a policy naming another
        is not an error: the deployment may add it later)."""
        settings = self.settings
        available = {"webhook"}
        if settings.notify_smtp_host:
            available.add("email")
        if settings.notify_sms_provider_url:
            available.add("sms")
        return frozenset(available)

    @property
    def ops_fallback(self) -> str | None:
        """The deployment's ops fallback address, when email can reach it."""
        return self.settings.notify_ops_fallback_email if "email" in self.channels else None

    # -- personal data, sealed ------------------------------------------------------------
    def _key(self, purpose: str) -> bytes:
        return derive_key(self.settings.encryption_key.get_secret_value(), purpose)

    def seal_address(self, value: str, owner_id: str) -> str:
        return seal(self._key("notify-contact-address"), value, associated=owner_id)

    def client_keys(self) -> ClientKeys:
        """Clients' own data keys (wrapped by the service key; erasure destroys them)."""
        return ClientKeys(CLIENT_KEYS, self._key("notify-client-keys"))

    async def seal_client_address(
        self, session: Any, respondent: str, value: str, owner_id: str
    ) -> str:
        key = await self.client_keys().key(session, respondent)
        return seal_for_client(key, value, associated=owner_id)

    def unseal_address(
        self, sealed: str, owner_id: str, client_key: bytes | None = None
    ) -> str | None:
        """A staff address, or a client's (sealed under the client's key: None once that key
        is destroyed). Client addresses sealed before per-client keys use the service key."""
        if is_client_sealed(sealed):
            if client_key is None:
                return None
            return unseal_for_client(client_key, sealed, associated=owner_id)
        return unseal(self._key("notify-contact-address"), sealed, associated=owner_id)

    def seal_link(self, link: str, invitation_id: str) -> str:
        return seal(self._key("notify-feedback-link"), link, associated=invitation_id)

    def unseal_link(self, sealed: str, invitation_id: str) -> str:
        return unseal(self._key("notify-feedback-link"), sealed, associated=invitation_id)

    def webhook_secret_key(self) -> bytes:
        return self._key("notify-webhook-secret")
