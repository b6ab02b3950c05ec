"""The dispatcher: claims what is due (``claiming``), sends it concurrently — at most
``notify_concurrency`` at once and ``notify_endpoint_concurrency`` per endpoint, each cut at
``notify_send_timeout_seconds`` (``sending``) — and records the outcomes off the latency path
(``outcomes``). A success is marked in Redis the moment the endpoint accepted it; a reclaimed
row with that mark is recorded as delivered without sending again. On shutdown the sends under
way finish and are recorded, and rows not yet started are handed back."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter as MetricCounter
from prometheus_client import Histogram

from services.notify.channels import Attempt, Channels
from services.notify.dependencies import NotifyDependencies, of_runtime
from services.notify.dispatch.claiming import Batch, Claimer, Holdings
from services.notify.dispatch.outcomes import Recorder
from services.notify.dispatch.sending import Outcome, Sender
from services.notify.models import NotifyDelivery
from shared.logs import get_logger
from shared.runtime import ServiceRuntime

log = get_logger(__name__)
ATTEMPTS = MetricCounter(
    "rapport_notify_attempts_total", "Delivery attempts", ["channel", "outcome"]
)
SEND_SECONDS = Histogram("rapport_notify_send_seconds", "Time of one delivery attempt", ["channel"])
_STOP: Any = object()
RECORD_GATHER_SECONDS = 0.02
RECORD_BATCH = 500


class Dispatcher:
    def __init__(self, deps: NotifyDependencies) -> None:
        settings = deps.settings
        self.deps = deps
        self.stopping = deps.runtime.stopping
        self.holdings = Holdings(
            concurrency=settings.notify_concurrency,
            per_endpoint=settings.notify_endpoint_concurrency,
            timeout=settings.notify_send_timeout_seconds,
        )
        self.sending = asyncio.Semaphore(settings.notify_concurrency)
        self.endpoint_slots: dict[str, asyncio.Semaphore] = {}
        self.results: asyncio.Queue[Outcome] = asyncio.Queue()
        self.channels = Channels(settings, settings.notify_concurrency)
        self.idle_seconds = min(5.0, settings.notify_scheduler_seconds)
        self.slot_freed = asyncio.Event()
        self.claimer = Claimer(deps, self.holdings)
        self.sender = Sender(deps, self.channels)
        self.recorder = Recorder(deps, self.idle_seconds, self.claimer.forget_endpoint)

    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_forever(), name="notify-recorder")
        holdings = self.holdings
        backoff = 0.1
        try:
            while not self.stopping.is_set():
                free = holdings.total_cap - len(holdings.inflight)
                self.deps.wake.clear()
                self.slot_freed.clear()
                claimed = 0
                if free > 0:
                    try:
                        batch = await self.claimer.claim(free)
                    except Exception as error:
                        log.warning(
                            "claiming deliveries failed; retrying",
                            error=f"{type(error).__name__}: {error}"[:300],
                        )
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    backoff = 0.1
                    claimed = len(batch.rows)
                    await self._start(batch)
                    if claimed == free:
                        continue  # more may be due: claim again while slots are free
                # Nothing more due now, or every slot busy: a new delivery (subscribers wake
                # us), the next due time or — when slots were what held us back — a finished
                # send ends the wait.
                # Something claimed but fewer than the free slots: an endpoint's cap may be what
                # held it back, so a finished send ends the wait too (not the idle look).
                blocked = (
                    claimed > 0
                    or len(holdings.inflight) > holdings.total_cap // 2
                    or bool(holdings.saturated())
                )
                await self._idle(await self.claimer.next_due() if claimed == 0 else None, blocked)
        finally:
            # Finish the batch in hand: sends under way complete and are recorded; rows not
            # yet started are handed back at once (see _deliver), nothing is abandoned.
            if holdings.inflight:
                await asyncio.gather(*holdings.inflight.values(), return_exceptions=True)
            await self.results.put(_STOP)
            await recorder
            await self.channels.aclose()

    async def _idle(self, next_due: float | None, blocked: bool) -> None:
        timeout = (
            self.idle_seconds if next_due is None else max(0.0, min(self.idle_seconds, next_due))
        )
        waits = [
            asyncio.ensure_future(self.deps.wake.wait()),
            asyncio.ensure_future(self.stopping.wait()),
        ]
        if blocked:
            waits.append(asyncio.ensure_future(self.slot_freed.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _start(self, batch: Batch) -> None:
        if not batch.rows:
            return
        sent = await self.deps.fast.already_sent([r.id for r in batch.rows])
        for row in batch.rows:
            self.holdings.by_endpoint[row.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(row, batch, row.id in sent))
            self.holdings.inflight[row.id] = task

    async def _deliver(self, row: NotifyDelivery, batch: Batch, sent_before: bool) -> None:
        started = time.perf_counter()
        slots = self.endpoint_slots.setdefault(
            row.endpoint_id, asyncio.Semaphore(self.holdings.per_endpoint)
        )
        try:
            if sent_before:  # reached its endpoint before a crash: record, do not resend
                outcome = Outcome(row, batch.lease_id, "attempted", Attempt("delivered"))
            elif row.urgent:  # at once: never behind the routine sends queued for its endpoint
                outcome = await self._attempt_within_lease(row, batch)
            else:
                async with slots, self.sending:
                    outcome = await self._attempt_within_lease(row, batch)
                if outcome.attempt is not None and outcome.attempt.verdict == "delivered":
                    await self.deps.fast.mark_sent(row.id)
        except Exception as error:  # a bug or a bad row must not stop the dispatcher
            log.exception("delivery attempt failed unexpectedly", delivery_id=row.id)
            outcome = Outcome(
                row, batch.lease_id, "attempted", Attempt("retry", None, type(error).__name__)
            )
        finally:
            SEND_SECONDS.labels(row.channel).observe(time.perf_counter() - started)
            self._release(row)
        if outcome.attempt is not None:
            ATTEMPTS.labels(row.channel, outcome.attempt.verdict).inc()
        await self.results.put(outcome)

    def _release(self, row: NotifyDelivery) -> None:
        """The row is no longer held here; a claim may refill once half a share is free."""
        holdings = self.holdings
        holdings.inflight.pop(row.id, None)
        holdings.by_endpoint[row.endpoint_id] -= 1
        held = holdings.by_endpoint[row.endpoint_id]
        if held <= 0:
            del holdings.by_endpoint[row.endpoint_id]
            self.endpoint_slots.pop(row.endpoint_id, None)
        if held == holdings.endpoint_cap // 2 or len(holdings.inflight) == holdings.total_cap // 2:
            self.slot_freed.set()  # room to refill: claim again

    async def _attempt_within_lease(self, row: NotifyDelivery, batch: Batch) -> Outcome:
        """Send unless stopping or unless the lease could run out during the send (another
        dispatcher may then take the row): either way it is handed back, not attempted."""
        assert row.lease_until is not None
        remaining = (row.lease_until - datetime.now(UTC)).total_seconds()
        if self.stopping.is_set() or remaining < self.holdings.timeout + 0.5:
            return Outcome(row, batch.lease_id, "released")
        return await self.sender.attempt(row, batch)

    async def _record_forever(self) -> None:
        finished = False
        while not finished:
            first = await self.results.get()
            if first is _STOP:
                return
            # Outcomes are off the latency path (the message is already out): gather a few
            # milliseconds' worth into one transaction.
            await asyncio.sleep(RECORD_GATHER_SECONDS)
            batch = [first]
            while len(batch) < RECORD_BATCH and not self.results.empty():
                item = self.results.get_nowait()
                if item is _STOP:
                    finished = True
                    break
                batch.append(item)
            backoff = 0.1
            while True:
                try:
                    await self.recorder.record(batch)
                    break
                except Exception as error:  # the database is briefly away: keep the results
                    log.warning(
                        "recording delivery outcomes failed; retrying",
                        error=f"{type(error).__name__}: {error}"[:300],
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)


async def dispatch_forever(runtime: ServiceRuntime) -> None:
    await Dispatcher(of_runtime(runtime)).run()
