"""Redis beside PostgreSQL: the dispatcher's "already sent?" marks and per-recipient rate
counters (a shortcut only; PostgreSQL decides)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.logs import get_logger

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
        found = await self._exists([self.sent_key(i) for i in delivery_ids])
        return {i for i, hit in zip(delivery_ids, found, strict=True) if hit}

    async def mark_sent(self, delivery_id: str) -> None:
        try:
            await self.redis.set(self.sent_key(delivery_id), b"1", ex=FAST_PATH_TTL_SECONDS)
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

    def sent_key(self, delivery_id: str) -> str:
        return f"{self.prefix}sent:{delivery_id}"

    async def forget(self, recipients: list[str], deliveries: list[str]) -> int:
        """An erasure: the recipients' rate-limit counters (named by pseudonym) and the
        deliveries' marks. Both expire on their own within hours, so a Redis outage is logged,
        not retried; the number of keys removed."""
        keys = [self.sent_key(d) for d in deliveries]
        try:
            for recipient in recipients:
                pattern = f"{self.prefix}rate:*:{recipient}:*"  # rate:<site>:<recipient>:…
                async for key in self.redis.scan_iter(match=pattern, count=500):
                    keys.append(key.decode() if isinstance(key, bytes) else str(key))
            return int(await self.redis.delete(*keys)) if keys else 0
        except Exception as error:
            log.warning("redis unavailable during erasure; keys expire", error=type(error).__name__)
            return 0
