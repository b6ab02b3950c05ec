"""Per-site request budgets: every staff request counts against each site its token grants, in
fixed one-minute windows kept in Redis (so the budget holds across processes and replicas; the
embedded default's in-memory Redis keeps it per process). Over budget: 429 problem+json with
``Retry-After`` until the window ends. When Redis is unreachable the request is let through (and
logged): the budget protects sites from each other, it must not take the API down with Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.logs import get_logger
from shared.problems import Problem

log = get_logger(__name__)
WINDOW_SECONDS = 60


class SiteRateLimiter:
    def __init__(self, redis: Redis, per_minute: int, namespace: str = "") -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.namespace = namespace

    async def charge(self, sites: Iterable[str], now: float | None = None) -> None:
        """Count one request against each site; raise the 429 when any is over its budget."""
        if self.per_minute <= 0:
            return
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        charged = sorted(set(sites))
        keys = [f"{self.namespace}ratelimit:{site}:{window}" for site in charged]
        if not keys:
            return
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, 2 * WINDOW_SECONDS)
                counts = (await pipe.execute())[::2]
        except (RedisError, OSError) as error:
            log.warning("rate limit not checked: redis unavailable", error=type(error).__name__)
            return
        over = [
            site for site, count in zip(charged, counts, strict=True) if count > self.per_minute
        ]
        if over:
            retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
            raise Problem(
                429,
                "Too many requests",
                f"Site {over[0]!r} is over its budget of {self.per_minute} requests per minute; "
                f"retry in {retry_after} s.",
                errors=[{"field": "site_id", "rule": "rate_limit", "site_id": over[0]}],
                headers={"Retry-After": str(retry_after)},
            )
