"""A site's routing (policy, reachable contacts, endpoints), read once and cached for a moment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import exists, literal, union_all
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain
from services.notify.mapping import contact_point
from services.notify.models import (
    NotifyClientContact,
    NotifyPolicy,
    NotifyStaffContact,
    NotifyWebhook,
)
from services.notify.policy import PolicyBook, RoutingPolicy, in_zone
from shared.site_time import SiteTimeZones


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
    # Each site's time zone: a policy that names none is read in its site's.
    zones: SiteTimeZones = field(default_factory=SiteTimeZones)
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
        policy = in_zone(policy, self.zones.of(site_id).key)
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
