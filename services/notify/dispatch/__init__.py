"""The dispatcher: sends due deliveries with bounded concurrency; each outcome recorded and
published once. ``claiming`` (step 1), ``sending`` (step 2, per channel), ``outcomes`` (step 3,
retries and dead letters), ``loop`` (the dispatcher itself, as the service's background work).

How a delivery moves, and why nothing is lost or doubled:

1. **Claim** (one short transaction): due ``pending`` rows — and ``sending`` rows whose lease
   ran out, i.e. whose dispatcher died mid-send — become ``sending`` under a new lease
   (``FOR UPDATE SKIP LOCKED``: replicas never claim the same row). No transaction is held
   while sending, so a slow endpoint holds nothing but its own slots.
2. **Send**, concurrently: at most ``notify_concurrency`` at once and
   ``notify_endpoint_concurrency`` per endpoint, each bounded by ``notify_send_timeout_seconds``.
   A success is marked in Redis at once (``sent:<delivery id>``).
3. **Record** (batched transactions): the row's new state — delivered, retry at the next
   jittered time, failed (a dead letter: ``status = failed`` with the reason) — and its
   ``notification.delivered`` / ``notification.failed`` event through the outbox, together. A
   row whose lease was taken over meanwhile is not touched.

**The window**: a kill after the endpoint accepted a message but before step 3 committed leaves
the row ``sending``; after its lease expires it is claimed again. If the Redis mark was written
it is recorded as delivered without sending again; only a kill in the microseconds between the
endpoint's answer and the Redis write sends it a second time — with the same ``webhook-id``
(and the same email ``Message-ID``), so receivers can drop it. At-least-once, never lost.
"""
