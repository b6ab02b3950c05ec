"""A simulated client's own goals and the support of the people around them (``rapport.simulate``).

Each client sets 1–3 goals at the first session and rates each 0–10 every session ("how close
are you to reaching it"). The ratings follow the client's course: the first goal moves with the
outcome (0.7 goal points per ORS point gained since intake, so a reliable ORS change of 5 is a
goal change of about 3.5, the goal scale's reliable change being 3), the others half as much,
with a point of noise now and then. A client who improves moves a goal by 3 or more; a stuck one
does not. Support for the therapy is rated at the first session and every four after: about 15%
of clients start low (2–4, the low_support rule's range), and most of those recover (7–9) by the
next rating, a few stay low.

Drawn from random generators of their own (by seed, client and session), so the alliance,
outcome and drop-out draws are the same with or without them and under every arm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

GOAL_PER_ORS_POINT = 0.7
LOW_SUPPORT_SHARE = 0.15
SUPPORT_RECOVERS = 0.7
SUPPORT_EVERY = 4  # sessions between support ratings, from the first


@dataclass(frozen=True)
class ClientGoals:
    """The goals a client set (their names stand for the ids feedback gives them) and the first
    ratings, and how the client's support starts."""

    seed: int
    client_id: str
    firsts: tuple[int, ...]
    low_support: bool
    support_recovers: bool

    @classmethod
    def draw(cls, seed: int, client_id: str) -> ClientGoals:
        rng = random.Random(f"goals:{seed}:{client_id}")
        firsts = tuple(rng.randint(1, 4) for _ in range(rng.randint(1, 3)))
        low = rng.random() < LOW_SUPPORT_SHARE
        return cls(seed, client_id, firsts, low, rng.random() < SUPPORT_RECOVERS)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"goal-{k}" for k in range(1, len(self.firsts) + 1))

    def ratings(self, session: int, ors_gain: float) -> dict[str, int]:
        """Each goal's rating at ``session``, ``ors_gain`` ORS points after intake."""
        rng = random.Random(f"goal-ratings:{self.seed}:{self.client_id}:{session}")
        out = {}
        for k, (name, first) in enumerate(zip(self.names, self.firsts, strict=True)):
            if session == 1:
                out[name] = first
                continue
            weight = GOAL_PER_ORS_POINT if k == 0 else GOAL_PER_ORS_POINT / 2
            noise = rng.choice((-1, 0, 0, 0, 1))
            out[name] = min(10, max(0, first + round(weight * ors_gain) + noise))
        return out

    def support(self, session: int) -> int | None:
        """The support rating at ``session``, if it is asked then."""
        if (session - 1) % SUPPORT_EVERY:
            return None
        rng = random.Random(f"support:{self.seed}:{self.client_id}:{session}")
        if not self.low_support:
            return rng.randint(6, 10)
        if session == 1:
            return rng.randint(2, 4)
        return rng.randint(7, 9) if self.support_recovers else rng.randint(3, 5)
