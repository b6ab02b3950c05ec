"""A site's routing policy: the stored one, else the deployment's file, else the default."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify.dependencies import NotifyDependencies
from services.notify.mapping import PolicyOut
from services.notify.models import NotifyPolicy
from services.notify.policy import RoutingPolicy, in_zone


async def policy_of(deps: NotifyDependencies, session: AsyncSession, site_id: str) -> PolicyOut:
    """The policy a site uses, and where it comes from."""
    book = deps.policies.book
    zone = deps.policies.zones.of(site_id).key
    row = await session.get(NotifyPolicy, site_id)
    if row is not None:
        return PolicyOut(
            site_id=site_id,
            source="site",
            policy=in_zone(RoutingPolicy.model_validate_json(row.document), zone),
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )
    return PolicyOut(
        site_id=site_id,
        source="configured" if book.knows(site_id) else "default",
        policy=in_zone(book.configured_for(site_id), zone),
    )


async def store_policy(
    session: AsyncSession, site_id: str, policy: RoutingPolicy, author: str
) -> NotifyPolicy:
    now = datetime.now(UTC)
    row = await session.get(NotifyPolicy, site_id)
    row = row or NotifyPolicy(site_id=site_id, document="", updated_at=now, updated_by="")
    # Only what the site set: a time zone it did not name stays its site's.
    row.document = policy.model_dump_json(exclude_unset=True)
    row.updated_at, row.updated_by = now, author[:128]
    session.add(row)
    return row


async def drop_policy(session: AsyncSession, site_id: str) -> None:
    row = await session.get(NotifyPolicy, site_id)
    if row is not None:
        await session.delete(row)
