"""Erasure on request: each service's record of erasures, its register of erased clients, and
each client's data key (crypto-shredding).

Every service consumes ``client.erasure.requested`` and removes or anonymises the client's data
in its own tables (``services/<name>/erasure.py``). What stays:

- ``<service>_erasures``: who asked, for which site, which pseudonym, when, and when this
  service completed it (the audit record of the erasure);
- ``<service>_erased``: the register of erased pseudonyms and episode ids. A pseudonym is a keyed
  HMAC: once the data is gone it identifies no one, and it lets every consumer skip the
  client's events emitted up to the erasure (late ones, or all of them when the topics are read
  again by a replay or ``rapport backfill``), so the rebuilt state holds no reference to the
  client; a client who comes back later is a new history. Erased episodes are skipped always.

A client's pseudonym is derived from the site and the clinic's reference, so an erasure is the
client's data at that site; it is requested by a site admin or clinical lead of that site and
each service applies it in the event's site scope (row-level security).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consumer import BATCH_EVENTS, Delivery, Handler
from shared.contracts import ClientErasureRequested
from shared.crypto import new_data_key, unwrap_key, wrap_key
from shared.db import insert_or_ignore, upsert
from shared.events import Event

KIND_CLIENT = "client"
KIND_EPISODE = "episode"


def erasure_tables(service: str, metadata: MetaData) -> tuple[Table, Table]:
    """The service's erasure record (site-scoped) and its register of erased subjects."""
    erasures = Table(
        f"{service}_erasures",
        metadata,
        Column("request_id", String(64), primary_key=True),
        Column("site_id", String(64), nullable=False),
        Column("client", String(40), nullable=False),
        Column("requested_by", String(128), nullable=True),
        Column("requested_at", DateTime(timezone=True), nullable=False),
        Column("completed_at", DateTime(timezone=True), nullable=True),
        Column("outcome", String(20), nullable=False),
        # How many rows of each table were removed or anonymised (JSON; counts only).
        Column("removed", Text, nullable=True),
        Index(f"ix_{service}_erasures_site_id", "site_id"),
    )
    erased = Table(
        f"{service}_erased",
        metadata,
        Column("subject", String(64), primary_key=True),
        Column("kind", String(10), nullable=False),
        Column("request_id", String(64), nullable=False),
        # When the erasure was requested: a client's events up to then are skipped, later
        # ones (a client who comes back) are not; an erased episode's events always are.
        Column("erased_at", DateTime(timezone=True), nullable=False),
    )
    return erasures, erased


def client_keys_table(service: str, metadata: MetaData) -> Table:
    return Table(
        f"{service}_client_keys",
        metadata,
        Column("client", String(40), primary_key=True),
        Column("key_sealed", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


@dataclass(frozen=True)
class _BatchRegister:
    """The register's entries for every subject of a consumer batch (read once)."""

    checked: frozenset[str]
    erased: dict[str, tuple[str, datetime]]  # subject -> (kind, erased_at)

    def any_erased(self, subjects: Iterable[str], emitted_at: datetime) -> bool:
        emitted = _aware(emitted_at)
        for subject in subjects:
            found = self.erased.get(subject)
            if found is not None and (found[0] == KIND_EPISODE or _aware(found[1]) >= emitted):
                return True
        return False


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite drops the zone


class ErasureRegister:
    """One service's erasure record and register."""

    def __init__(self, erasures: Table, erased: Table) -> None:
        self.erasures = erasures
        self.erased = erased
        self._batch_key = f"rapport.{erased.name}.batch"

    async def any_erased(
        self, session: AsyncSession, subjects: Iterable[str], emitted_at: datetime
    ) -> bool:
        """Is an event emitted at ``emitted_at`` about any erased subject?"""
        wanted = sorted({s for s in subjects if s})
        if not wanted:
            return False
        batch = await self._batch_register(session)
        if batch is not None and batch.checked.issuperset(wanted):
            return batch.any_erased(wanted, emitted_at)
        erased = self.erased.c
        found = await session.execute(
            select(erased.subject)
            .where(
                erased.subject.in_(wanted),
                or_(erased.kind == KIND_EPISODE, erased.erased_at >= emitted_at),
            )
            .limit(1)
        )
        return found.first() is not None

    async def _batch_register(self, session: AsyncSession) -> _BatchRegister | None:
        """In a consumer's batch transaction: the entries of all its events' subjects, read
        with the first check (one query per batch, not one per event)."""
        cached: _BatchRegister | None = session.info.get(self._batch_key)
        if cached is not None:
            return cached
        events = session.info.get(BATCH_EVENTS)
        if not events:
            return None
        subjects = sorted(set().union(*(subjects_of(e.data) for e in events)) - {""})
        erased = self.erased.c
        rows = await session.execute(
            select(erased.subject, erased.kind, erased.erased_at).where(
                erased.subject.in_(subjects)
            )
        )
        cached = _BatchRegister(
            frozenset(subjects), {r.subject: (r.kind, r.erased_at) for r in rows}
        )
        session.info[self._batch_key] = cached
        return cached

    async def register(
        self,
        session: AsyncSession,
        request_id: str,
        clients: Iterable[str],
        episodes: Iterable[str],
        erased_at: datetime,
    ) -> None:
        rows = [
            {"subject": s, "kind": KIND_CLIENT, "request_id": request_id, "erased_at": erased_at}
            for s in sorted(set(clients))
        ] + [
            {"subject": e, "kind": KIND_EPISODE, "request_id": request_id, "erased_at": erased_at}
            for e in sorted(set(episodes))
        ]
        session.info.pop(self._batch_key, None)  # the batch's copy is out of date now
        for row in rows:  # erased again (a client who came back): the later erasure counts
            insert_row = upsert(session, self.erased).values(row)
            await session.execute(
                insert_row.on_conflict_do_update(
                    index_elements=[self.erased.c.subject],
                    set_={"request_id": row["request_id"], "erased_at": row["erased_at"]},
                )
            )

    async def record(
        self,
        session: AsyncSession,
        *,
        request_id: str,
        site_id: str,
        client: str,
        requested_at: datetime,
        requested_by: str | None = None,
    ) -> None:
        await session.execute(
            insert_or_ignore(session, self.erasures),
            [
                {
                    "request_id": request_id,
                    "site_id": site_id,
                    "client": client,
                    "requested_by": requested_by,
                    "requested_at": requested_at,
                    "outcome": "requested",
                }
            ],
        )

    async def conclude(
        self,
        session: AsyncSession,
        request: ClientErasureRequested,
        *,
        outbox: Table,
        clients: Sequence[str],
        episodes: Sequence[str],
        removed: dict[str, int],
    ) -> None:
        """The last steps of every service's share of an erasure, once the service has deleted
        its own rows (and shredded its client keys): forget the outbox rows keyed by the client
        or its episodes, record the request, register the erased subjects (so later events
        about them are skipped) and mark the request completed with what was removed."""
        removed[outbox.name] = await forget_outbox(session, outbox, [*clients, *episodes])
        await self.record(
            session,
            request_id=request.request_id,
            site_id=request.site_id,
            client=request.client,
            requested_at=request.requested_at,
        )
        await self.register(session, request.request_id, clients, episodes, request.requested_at)
        await self.complete(session, request.request_id, removed)

    async def complete(
        self, session: AsyncSession, request_id: str, removed: Mapping[str, int]
    ) -> None:
        await session.execute(
            update(self.erasures)
            .where(self.erasures.c.request_id == request_id)
            .values(
                completed_at=datetime.now(UTC),
                outcome="completed",
                removed=json.dumps(dict(sorted(removed.items()))),
            )
        )


async def forget_outbox(session: AsyncSession, outbox: Table, subjects: Iterable[str]) -> int:
    """Delete the service's outbox rows keyed by the client or its episodes: published ones
    are only kept for a while for diagnosis, and unpublished ones must not go out any more."""
    keys = sorted(set(subjects))
    if not keys:
        return 0
    result = await session.execute(delete(outbox).where(outbox.c.key.in_(keys)))
    return rows_affected(result)


class ClientKeys:
    """Each client's data key, stored wrapped by the service key; deleting it shreds every
    value sealed under it."""

    def __init__(self, table: Table, service_key: bytes) -> None:
        self.table = table
        self.service_key = service_key

    async def existing(self, session: AsyncSession, client: str) -> bytes | None:
        wrapped = await session.scalar(
            select(self.table.c.key_sealed).where(self.table.c.client == client)
        )
        return None if wrapped is None else unwrap_key(self.service_key, wrapped, client)

    async def existing_many(
        self, session: AsyncSession, clients: Iterable[str]
    ) -> dict[str, bytes]:
        wanted = sorted(set(clients))
        if not wanted:
            return {}
        rows = await session.execute(
            select(self.table.c.client, self.table.c.key_sealed).where(
                self.table.c.client.in_(wanted)
            )
        )
        return {c: unwrap_key(self.service_key, w, c) for c, w in rows.all()}

    async def key(self, session: AsyncSession, client: str) -> bytes:
        """The client's key, created on first use."""
        found = await self.existing(session, client)
        if found is not None:
            return found
        key = new_data_key()
        # Two first uses at once: one key wins (the other insert does nothing), both use it.
        await session.execute(
            upsert(session, self.table)
            .values(
                client=client,
                key_sealed=wrap_key(self.service_key, key, client),
                created_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
        )
        stored = await self.existing(session, client)
        assert stored is not None
        return stored

    async def shred(self, session: AsyncSession, clients: Sequence[str]) -> int:
        return await shred_client_keys(session, self.table, clients)


async def shred_client_keys(session: AsyncSession, keys: Table, clients: Sequence[str]) -> int:
    """Crypto-shredding: delete the clients' data keys, so every value sealed under them (in
    this database, a backup or a copy) can never be read again."""
    if not clients:
        return 0
    result = await session.execute(delete(keys).where(keys.c.client.in_(clients)))
    return rows_affected(result)


def table_of(model: Any) -> Table:
    """The Core table of a SQLModel table class (erasure works on tables, not objects)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def rows_affected(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def subjects_of(data: Any) -> set[str]:
    """The pseudonyms and episode id an event is about (for the register check)."""
    found: set[str] = set()
    for name in ("client", "respondent", "episode_id", "rematch_of_episode"):
        value = getattr(data, name, None)
        if isinstance(value, str):
            found.add(value)
    for member in getattr(data, "members", None) or ():
        respondent = getattr(member, "respondent", None)
        if isinstance(respondent, str):
            found.add(respondent)
    return found


def skipping_erased(register: ErasureRegister, handler: Handler) -> Handler:
    """``handler``, except for events about an erased client or episode: those have no effect
    (late events after an erasure, or the whole history when the topics are read again)."""

    async def guarded(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        event = delivery.event
        if await register.any_erased(delivery.session, subjects_of(event.data), event.time):
            return []
        return await handler(delivery)

    return guarded
