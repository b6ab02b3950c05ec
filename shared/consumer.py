"""Idempotent event handling with a dead-letter path.

Every subscriber goes through :meth:`Consumer.handle_batch` (:meth:`Consumer.handle` is a batch of
one):

1. decode and validate the CloudEvent; if that fails the raw message goes to ``<topic>.dlq`` with
   the reason in headers, and the offset moves on (a poison message never blocks its partition);
2. in one database transaction: claim the event id in the inbox (a redelivery stops here), run the
   service's handler, write the events it emits to the outbox;
3. only then does FastStream commit the offset (``AckPolicy.NACK_ON_ERROR``: commit after success,
   rewind on an unexpected escape).

Records arrive in batches (one Kafka poll): :meth:`Consumer.handle_batch` applies a batch's events
in one transaction, in order (one inbox statement, one commit and one offset commit for the lot,
each event under its own site scope). If any event of the batch fails, that transaction is rolled
back whole and the batch is applied again one event at a time, each in its own transaction, so
a poison or failing event is retried and dead-lettered on its own, exactly as if it had come alone.

Transient failures (database or network briefly down) are retried with backoff for as long as
they last: the partition waits rather than losing or dead-lettering good events. A handler that
keeps raising on the same event (a bug, or data the handler rejects) is dead-lettered after a few
attempts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.db import Sessionmaker, is_transient, rescope, site_scope
from shared.events import (
    Event,
    EventData,
    EventRegistry,
    InvalidEvent,
    KafkaRecord,
    decode,
    header_dict,
)
from shared.logs import get_logger
from shared.metrics import CONSUMED, DEAD_LETTERS, HANDLER_SECONDS
from shared.outbox import Inbox, Outbox
from shared.tracing import bound, from_headers

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

log = get_logger(__name__)

D = TypeVar("D", bound=EventData)

BATCH_EVENTS = "rapport.batch_events"
"""``session.info`` key: the events of the batch a consumer transaction applies (so a check each
event needs, e.g. the erasure register, can be read once for all of them)."""

SendRaw = Callable[[KafkaRecord], Awaitable[None]]
"""Publish one record directly and wait for the broker's acknowledgement (DLQ only)."""


@dataclass(frozen=True)
class Delivery(Generic[D]):
    """One event being applied, with the transaction its effects must join."""

    event: Event[D]
    session: AsyncSession
    # The service's typed dependencies object (built once in its ``app.py``); a subscriber reads
    # it through its service's accessor (``dependencies.of_delivery``), never by a string key.
    dependencies: Any = None
    # Called once the transaction has committed (e.g. wake a dispatcher); never on rollback.
    after_commit: list[Callable[[], None]] = field(default_factory=list)


Handler = Callable[[Delivery[Any]], Awaitable[Sequence[Event[Any]]]]


class HandlerRejected(Exception):
    """Raised by a handler for an event it can never apply (e.g. an unknown instrument).

    Dead-lettered at once, without retries.
    """


@dataclass(frozen=True)
class Outcome:
    status: str  # applied | duplicate | dead_lettered | ignored (not one the handler acts on)
    emitted: int = 0


@dataclass(frozen=True)
class Arrival:
    """One record for one handler (a record of a topic with two subscriptions is two)."""

    handler_name: str
    handler: Handler
    accepted: Sequence[str]
    record: KafkaRecord
    raw_headers: Sequence[tuple[str, bytes]]
    position: str
    wants: Callable[[Event[Any]], bool] | None = None  # None: every event of the type


@dataclass(frozen=True)
class _Decoded:
    index: int
    arrival: Arrival
    event: Event[Any]
    headers: dict[str, str]

    @property
    def site(self) -> str:
        return str(getattr(self.event.data, "site_id", ""))


def _wanted(arrival: Arrival, event: Event[Any]) -> bool:
    """Does the handler act on this event? (A filter that fails leaves it to the handler.)"""
    if arrival.wants is None:
        return True
    try:
        return bool(arrival.wants(event))
    except Exception:
        return True


class Consumer:
    def __init__(
        self,
        service: str,
        sessionmaker: Sessionmaker,
        inbox: Inbox,
        outbox: Outbox,
        registry: EventRegistry,
        send_raw: SendRaw,
        on_emitted: Callable[[], None] = lambda: None,
        max_handler_attempts: int = 3,
        dependencies: Any = None,
    ) -> None:
        self.service = service
        self.dependencies = dependencies
        self.sessionmaker = sessionmaker
        self.inbox = inbox
        self.outbox = outbox
        self.registry = registry
        self.send_raw = send_raw
        self.on_emitted = on_emitted
        self.max_handler_attempts = max_handler_attempts
        self.stopping = False

    async def handle(
        self,
        handler_name: str,
        handler: Handler,
        accepted: Sequence[str],
        record: KafkaRecord,
        raw_headers: Sequence[tuple[str, bytes]],
        position: str,
    ) -> Outcome:
        """One record for one handler: a batch of one."""
        arrival = Arrival(handler_name, handler, accepted, record, raw_headers, position)
        (outcome,) = await self.handle_batch([arrival])
        return outcome

    async def handle_batch(self, arrivals: Sequence[Arrival]) -> list[Outcome]:
        """Apply a poll's records in order; one outcome per arrival (see the module text)."""
        outcomes: list[Outcome | None] = [None] * len(arrivals)
        decoded: list[_Decoded] = []
        for index, arrival in enumerate(arrivals):
            try:
                headers = header_dict(arrival.raw_headers)
                event = decode(headers, arrival.record.value, self.registry, arrival.accepted)
            except InvalidEvent as invalid:
                await self.dead_letter(
                    arrival.record,
                    arrival.raw_headers,
                    arrival.handler_name,
                    invalid.reason,
                    arrival.position,
                )
                outcomes[index] = Outcome("dead_lettered")
                continue
            if not _wanted(arrival, event):
                outcomes[index] = Outcome("ignored")
                CONSUMED.labels(self.service, arrival.handler_name, "ignored").inc()
                continue
            decoded.append(_Decoded(index, arrival, event, headers))
        together = None
        if len(decoded) > 1 and not self.stopping:
            try:
                together = await self._apply_together(decoded)
            except Exception as error:
                log.warning(
                    "a batch failed; applying its events one at a time",
                    events=len(decoded),
                    error=f"{type(error).__name__}: {error}"[:300],
                )
        if together is not None:
            for item, outcome in zip(decoded, together, strict=True):
                outcomes[item.index] = outcome
        else:
            for item in decoded:
                correlation_id, trace = from_headers(item.headers)
                # The event's transaction sees the event's site only (row-level security).
                with bound(correlation_id, trace), site_scope(item.site):
                    outcomes[item.index] = await self._apply_with_retries(
                        item.arrival.handler_name,
                        item.arrival.handler,
                        item.event,
                        item.arrival.record,
                        item.arrival.raw_headers,
                        item.arrival.position,
                    )
        return [outcome or Outcome("dead_lettered") for outcome in outcomes]

    async def _apply_together(self, batch: Sequence[_Decoded]) -> list[Outcome]:
        """The batch's events in one transaction; raises (and commits nothing) if any fails."""
        outcomes: list[Outcome] = []
        callbacks: list[Callable[[], None]] = []
        timings: list[tuple[str, float]] = []
        outbox_rows: list[dict[str, Any]] = []  # every event's emitted events, in order
        scope = batch[0].site
        with site_scope(scope):
            async with self.sessionmaker() as session, session.begin():
                session.info[BATCH_EVENTS] = [item.event for item in batch]
                fresh = await self.inbox.claim_many(
                    session, [(item.arrival.handler_name, item.event.id) for item in batch]
                )
                for item in batch:
                    key = (item.arrival.handler_name, item.event.id)
                    if key not in fresh:
                        outcomes.append(Outcome("duplicate"))
                        continue
                    fresh.discard(key)  # the same event twice in one poll: once
                    if item.site != scope:
                        await rescope(session, item.site)
                        scope = item.site
                    started = time.perf_counter()
                    correlation_id, trace = from_headers(item.headers)
                    with bound(correlation_id, trace), site_scope(item.site):
                        delivery = Delivery(
                            event=item.event, session=session, dependencies=self.dependencies
                        )
                        emitted = await item.arrival.handler(delivery)
                        outbox_rows.extend(self.outbox.rows(emitted))
                    # Each event's handler reads what the ones before it wrote, never an
                    # object loaded for an earlier event.
                    await session.flush()
                    session.expunge_all()
                    callbacks.extend(delivery.after_commit)
                    outcomes.append(Outcome("applied", len(emitted)))
                    timings.append((item.arrival.handler_name, time.perf_counter() - started))
                await self.outbox.insert(session, outbox_rows)
        for callback in callbacks:
            callback()
        for item, outcome in zip(batch, outcomes, strict=True):
            CONSUMED.labels(self.service, item.arrival.handler_name, outcome.status).inc()
        for handler_name, seconds in timings:
            HANDLER_SECONDS.labels(self.service, handler_name).observe(seconds)
        if any(outcome.emitted for outcome in outcomes):
            self.on_emitted()
        return outcomes

    async def _apply_with_retries(
        self,
        handler_name: str,
        handler: Handler,
        event: Event[Any],
        record: KafkaRecord,
        raw_headers: Sequence[tuple[str, bytes]],
        position: str,
    ) -> Outcome:
        failures = 0
        backoff = 0.05
        while True:
            started = time.perf_counter()
            try:
                outcome = await self._apply(handler_name, handler, event)
            except HandlerRejected as rejected:
                await self.dead_letter(
                    record, raw_headers, handler_name, f"rejected: {rejected}", position
                )
                return Outcome("dead_lettered")
            except Exception as error:
                if is_transient(error) and not self.stopping:
                    log.warning(
                        "transient failure applying event; retrying",
                        handler=handler_name,
                        event_id=event.id,
                        error=f"{type(error).__name__}: {error}"[:300],
                        retry_in_s=backoff,
                    )
                else:
                    failures += 1
                    log.error(
                        "handler failed",
                        handler=handler_name,
                        event_id=event.id,
                        attempt=failures,
                        error=f"{type(error).__name__}: {error}"[:300],
                    )
                    if failures >= self.max_handler_attempts or self.stopping:
                        if self.stopping:
                            raise  # not committed: redelivered after restart
                        await self.dead_letter(
                            record,
                            raw_headers,
                            handler_name,
                            f"handler failed {failures} times: {type(error).__name__}: {error}",
                            position,
                        )
                        return Outcome("dead_lettered")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            HANDLER_SECONDS.labels(self.service, handler_name).observe(
                time.perf_counter() - started
            )
            CONSUMED.labels(self.service, handler_name, outcome.status).inc()
            if outcome.emitted:
                self.on_emitted()
            log.debug(
                "event handled",
                handler=handler_name,
                event_id=event.id,
                type=event.type.type,
                status=outcome.status,
            )
            return outcome

    async def _apply(self, handler_name: str, handler: Handler, event: Event[Any]) -> Outcome:
        async with self.sessionmaker() as session, session.begin():
            if not await self.inbox.claim(session, handler_name, event.id):
                return Outcome("duplicate")
            delivery = Delivery(event=event, session=session, dependencies=self.dependencies)
            emitted = await handler(delivery)
            await self.outbox.add(session, emitted)
        for callback in delivery.after_commit:
            callback()
        return Outcome("applied", len(emitted))

    async def dead_letter(
        self,
        record: KafkaRecord,
        raw_headers: Sequence[tuple[str, bytes]],
        handler_name: str,
        reason: str,
        position: str,
    ) -> None:
        headers: dict[str, str] = {}
        for name, value in raw_headers:
            headers[name] = (value or b"").decode("utf-8", errors="replace")
        headers.update(
            {
                "dlq_error": reason[:1000],
                "dlq_source_topic": record.topic,
                "dlq_source_position": position,
                "dlq_service": self.service,
                "dlq_handler": handler_name,
                "dlq_failed_at": datetime.now(UTC).isoformat(),
            }
        )
        dlq = KafkaRecord(
            topic=f"{record.topic}.dlq", key=record.key, value=record.value, headers=headers
        )
        await self.send_raw(dlq)
        DEAD_LETTERS.labels(self.service, record.topic).inc()
        CONSUMED.labels(self.service, handler_name, "dead_lettered").inc()
        log.warning(
            "message dead-lettered",
            handler=handler_name,
            topic=record.topic,
            position=position,
            reason=reason[:300],
        )
