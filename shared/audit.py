"""Audit trail of staff access to client-level data: who read or changed what, where, when and
with which outcome (allowed, denied, not found, invalid, failed).

Each service owns an append-only ``<service>_audit`` table. Every record carries the SHA-256 of
the previous record of its chain (one chain per service) and its own hash over its fields and
that link, so changing, deleting or inserting a row breaks the chain at that row:
:func:`verify_chain` walks it and names the first broken link. On PostgreSQL a trigger refuses
UPDATE, DELETE and TRUNCATE (see the services' ``*_0003`` migrations).

Appends to one chain are serialised so concurrent requests never fork it: a transaction-scoped
PostgreSQL advisory lock on the chain (across processes), one writer at a time within a process
(SQLite, the embedded default, has no advisory locks), and a unique ``(chain, seq)`` as the
last guard. Within a process the records of requests that arrive while a write is under way are
linked and committed together in the next write (group commit): each request still waits for
its own record to be committed, and one transaction carries many records under load.

A route declares itself client-level with ``dependencies=[audited(service, action, param)]``;
the dependency writes exactly one record per request made by an authenticated staff member,
after the route has run and before the answer is sent, in its own transaction (so denials and
failures are recorded too; a failed audit write fails the request). The known gap: a process
killed between a change's commit and its audit record's leaves that change unrecorded. Requests
without a valid token are not staff access and are left to the access log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import SQLModel

from shared.db import all_sites, serial_key
from shared.errors import DomainError
from shared.logs import get_logger
from shared.problems import Problem, problem_from_domain_error

log = get_logger(__name__)

GENESIS = "0" * 64
Outcome = str  # allowed | denied | not_found | invalid | failed


def audit_table(service: str, metadata: MetaData) -> Table:
    return Table(
        f"{service}_audit",
        metadata,
        serial_key(),
        Column("chain", String(64), nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor", String(128), nullable=False),
        Column("actor_role", String(32), nullable=False),
        Column("site_id", String(64), nullable=True),
        Column("action", String(64), nullable=False),
        Column("resource", String(200), nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("status", Integer, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        UniqueConstraint("chain", "seq", name=f"uq_{service}_audit_chain_seq"),
    )


@dataclass(frozen=True)
class AuditEntry:
    """One staff access, before it is linked into a chain."""

    at: datetime
    actor: str
    actor_role: str
    site_id: str | None
    action: str
    resource: str
    outcome: Outcome
    status: int


def _instant(at: datetime) -> str:
    """The time as hashed: UTC, microseconds (SQLite gives it back without a zone)."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


def record_hash(chain: str, seq: int, prev_hash: str, entry: AuditEntry) -> str:
    fields = asdict(entry) | {"at": _instant(entry.at), "chain": chain, "seq": seq}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain stops being trustworthy, and why."""

    chain: str
    seq: int
    row_id: int | None
    reason: str  # hash_mismatch | prev_hash_mismatch | gap


def verify_chain(chain: str, rows: Iterable[Any]) -> BrokenLink | None:
    """Walk one chain in ``seq`` order; the first row whose link or hash does not hold."""
    previous, expected_seq = GENESIS, 1
    for row in rows:
        if row.seq != expected_seq:
            return BrokenLink(chain, expected_seq, getattr(row, "id", None), "gap")
        if row.prev_hash != previous:
            return BrokenLink(chain, row.seq, getattr(row, "id", None), "prev_hash_mismatch")
        entry = AuditEntry(
            at=row.at,
            actor=row.actor,
            actor_role=row.actor_role,
            site_id=row.site_id,
            action=row.action,
            resource=row.resource,
            outcome=row.outcome,
            status=row.status,
        )
        if record_hash(chain, row.seq, row.prev_hash, entry) != row.hash:
            return BrokenLink(chain, row.seq, getattr(row, "id", None), "hash_mismatch")
        previous, expected_seq = row.hash, expected_seq + 1
    return None


class AuditTrail:
    """A service's audit chain."""

    def __init__(self, service: str, table: Table) -> None:
        self.service = service
        self.table = table
        self.chain = service
        self._waiting: list[tuple[AuditEntry, asyncio.Future[str]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, session: AsyncSession, entry: AuditEntry) -> str:
        """Link ``entry`` into the chain inside the caller's transaction; its hash."""
        (digest,) = await self.append_all(session, [entry])
        return digest

    async def append_all(self, session: AsyncSession, entries: Sequence[AuditEntry]) -> list[str]:
        """Link ``entries``, in order, into the chain inside the caller's transaction."""
        table = self.table
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:chain, 0))"),
                {"chain": f"{table.name}:{self.chain}"},
            )
        head = (
            await session.execute(
                select(table.c.seq, table.c.hash)
                .where(table.c.chain == self.chain)
                .order_by(table.c.seq.desc())
                .limit(1)
            )
        ).first()
        seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS)
        rows, digests = [], []
        for entry in entries:
            digest = record_hash(self.chain, seq, prev_hash, entry)
            rows.append(
                {"chain": self.chain, "seq": seq, "prev_hash": prev_hash, "hash": digest}
                | asdict(entry)
            )
            digests.append(digest)
            seq, prev_hash = seq + 1, digest
        await session.execute(insert(table), rows)
        return digests

    async def record(self, sessionmaker: async_sessionmaker[Any], entry: AuditEntry) -> str:
        """Append ``entry`` in a transaction of its own (shared with the records of concurrent
        requests); returns once it is committed, raises if it could not be."""
        recorded: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, recorded))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(sessionmaker))
        # A request cancelled meanwhile does not cancel the write its record is part of.
        return await asyncio.shield(recorded)

    async def _write_waiting(self, sessionmaker: async_sessionmaker[Any]) -> None:
        # The chain runs across the service's sites (and records denied attempts on other
        # sites), so appending is the service's own work, outside the caller's site scope.
        with all_sites():
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    async with sessionmaker() as session, session.begin():
                        digests = await self.append_all(session, [e for e, _ in group])
                except Exception as error:
                    for _, recorded in group:
                        if not recorded.done():
                            recorded.set_exception(error)
                    continue
                for (_, recorded), digest in zip(group, digests, strict=True):
                    if not recorded.done():
                        recorded.set_result(digest)

    async def verify(self, sessionmaker: async_sessionmaker[Any]) -> BrokenLink | None:
        with all_sites():
            return await self._verify(sessionmaker)

    async def _verify(self, sessionmaker: async_sessionmaker[Any]) -> BrokenLink | None:
        async with sessionmaker() as session:
            rows = (
                await session.execute(
                    select(self.table).where(self.table.c.chain == self.chain).order_by("seq")
                )
            ).all()
        return verify_chain(self.chain, rows)


def trail_of(runtime: Any, service: str) -> AuditTrail:
    """The service's trail in this process (one lock for every request of the runtime)."""
    trail: AuditTrail | None = runtime.state.get("audit_trail")
    if trail is None:
        trail = AuditTrail(service, SQLModel.metadata.tables[f"{service}_audit"])
        runtime.state["audit_trail"] = trail
    return trail


def note_site(request: Request, site_id: str) -> None:
    """Tell the audit record which site the resource belongs to (once a route has looked it
    up), when the site is not in the path, query or body."""
    request.state.audit_site = site_id


def outcome_of(status: int) -> Outcome:
    if status < 400:
        return "allowed"
    if status in (401, 403):
        return "denied"
    if status == 404:
        return "not_found"  # "not found or not yours": the API does not tell them apart
    if status < 500:
        return "invalid"
    return "failed"


async def _site_of(request: Request, staff: Any, status: int) -> str | None:
    noted = getattr(request.state, "audit_site", None)
    if isinstance(noted, str):
        return noted[:64]
    for source in (request.path_params, request.query_params):
        value = source.get("site_id")
        if isinstance(value, str):
            return value[:64]  # as sent: it may not have passed validation
    if request.method in {"POST", "PUT", "PATCH"}:
        try:
            body = await request.json()  # already read and cached by the route
        except Exception:
            return None
        if isinstance(body, dict) and isinstance(body.get("site_id"), str):
            return str(body["site_id"])[:64]
    sites = sorted(getattr(staff, "sites", ()))
    if status < 400 and len(sites) == 1:
        return str(sites[0])  # what a single-site member of staff was allowed is at their site
    return None


def _resource(request: Request, kind: str, params: Sequence[str]) -> str:
    values = [str(request.path_params.get(p, "")) for p in params]
    return "/".join([kind, *values])[:200] if values else kind


def audited(service: str, action: str, resource: str, *params: str) -> Any:
    """A route dependency recording one audit entry per staff request: ``action`` (e.g.
    ``episode.read``), the resource kind and the path parameters that identify it."""

    async def record(request: Request) -> AsyncIterator[None]:
        status = 200
        try:
            yield
            route = request.scope.get("route")
            status = int(getattr(route, "status_code", None) or 200)
        except Problem as problem:
            status = problem.status
            raise
        except DomainError as error:  # a use case's refusal: the status its problem answers
            status = problem_from_domain_error(error).status
            raise
        except RequestValidationError:
            status = 422
            raise
        except Exception:
            status = 500
            raise
        finally:
            staff = getattr(request.state, "staff", None)
            if staff is not None:
                runtime = request.app.state.runtimes[service]
                trail = trail_of(runtime, service)
                entry = AuditEntry(
                    at=datetime.now(UTC),
                    actor=str(staff.subject)[:128],
                    actor_role=str(staff.role)[:32],
                    site_id=await _site_of(request, staff, status),
                    action=action,
                    resource=_resource(request, resource, params),
                    outcome=outcome_of(status),
                    status=status,
                )
                await trail.record(runtime.sessionmaker, entry)

    return Depends(record, scope="function")


def append_only_ddl(table: str) -> list[str]:
    """PostgreSQL: refuse UPDATE, DELETE and TRUNCATE on an audit table, whoever asks (the
    owner too; only dropping the trigger, which needs the owner, lifts it)."""
    return [
        f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{table} is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$""",
        f"""CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""",
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()""",
    ]


def drop_append_only_ddl(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}",
        f"DROP FUNCTION IF EXISTS {table}_append_only()",
    ]
