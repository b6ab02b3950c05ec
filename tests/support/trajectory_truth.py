"""A simulated network whose true trajectories are known, for checking the fit (test and bench).

Each episode starts in an ORS band b (width 5: first score uniform over 5b.0 … 5b+4.9); at each
later session s its client's ORS total is drawn from Normal(mean(b, s), sd(b, s)) (clients
recover toward 32, by 60% of the way within a dozen sessions), with a per-episode random effect
so that a client's sessions are correlated as real ones are; the marginal at each band and
session is still exactly that normal (before rounding to the ORS's step of 0.1, which moves a
quantile by at most 0.05, and clipping to 0–40, which moves none of p10…p90 while they lie
inside 0–40). Around it, what the fit must leave out or handle: the client's SRS every session,
a partner's ORS (much lower) in a fifth of the episodes, a PHQ-9 every other session in a third,
an answer amended later at the same session (the last one stands), and in a tenth of the
episodes the first session's record arriving after the second's.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

_STANDARD = NormalDist()


@dataclass(frozen=True)
class KnownTrajectories:
    bands: tuple[int, ...] = (1, 2, 3, 4, 5)
    band_width: int = 5
    min_sessions: int = 4
    max_sessions: int = 12
    shift: float = 0.0  # the truth moved by this many points (to show a wrong truth is caught)
    correlation: float = 0.6  # between a client's sessions

    def mean(self, band: int, session: int) -> float:
        start = band * self.band_width + self.band_width / 2
        return start + (32 - start) * 0.6 * (1 - math.exp(-(session - 1) / 4))

    def sd(self, band: int, session: int) -> float:
        return 2.5 + 0.1 * (session - 1)

    def quantile(self, band: int, session: int, p: float) -> float:
        """The true p-quantile of the band's totals at the session (session 1: the uniform
        first score)."""
        if session == 1:
            return band * self.band_width + (self.band_width - 0.1) * p + self.shift
        return self.mean(band, session) + self.shift + self.sd(band, session) * _STANDARD.inv_cdf(p)

    def density(self, band: int, session: int, p: float) -> float:
        """The density of the band's totals at their true p-quantile."""
        if session == 1:
            return 1 / self.band_width
        sd = self.sd(band, session)
        return _STANDARD.pdf(_STANDARD.inv_cdf(p)) / sd

    def standard_error(self, band: int, session: int, p: float, n: int) -> float:
        """Of a sample p-quantile of n episodes: sqrt(p(1 − p) / n) / density."""
        return math.sqrt(p * (1 - p) / n) / self.density(band, session, p)

    def lines(self, rng: random.Random, episodes_per_band: int) -> Iterator[str]:
        """The records in the replay format, episode by episode (drawn from the unshifted
        truth)."""
        index = 0
        for _ in range(episodes_per_band):
            for band in self.bands:
                yield from self._episode(rng, band, index)
                index += 1

    def _episode(self, rng: random.Random, band: int, index: int) -> Iterator[str]:
        episode = f"ep-{index:07d}"
        base = {"episode_id": episode, "site_id": f"site-{index % 3}", "therapist_id": "th-1"}
        client, partner = f"{episode}-c", f"{episode}-p"
        has_partner = rng.random() < 0.2
        has_phq = rng.random() < 1 / 3
        first_late = rng.random() < 0.1
        effect = rng.gauss(0, 1)
        rows: list[dict[str, Any]] = []
        for session in range(1, rng.randint(self.min_sessions, self.max_sessions) + 1):
            at = {"session": session, "at": f"2026-01-{session:02d}T10:00:00Z"}
            if session == 1:
                tenths = band * self.band_width * 10 + rng.randrange(self.band_width * 10)
            else:
                own = rng.gauss(0, 1) * math.sqrt(1 - self.correlation**2)
                value = self.mean(band, session) + self.sd(band, session) * (
                    self.correlation * effect + own
                )
                tenths = min(400, max(0, round(value * 10)))
            if rng.random() < 0.1:  # a wrong first answer at this session, amended below
                rows.append(_line(base, at, "client", client, "ors", _ors(rng.randrange(50))))
            rows.append(_line(base, at, "client", client, "ors", _ors(tenths)))
            rows.append(_line(base, at, "client", client, "srs", _srs(rng.randrange(300, 400))))
            if has_partner:
                rows.append(_line(base, at, "partner", partner, "ors", _ors(tenths // 3)))
            if has_phq and session % 2:
                rows.append(_line(base, at, "client", client, "phq-9", _phq(rng.randrange(28))))
        if first_late:
            first = [r for r in rows if r["session"] == 1]
            rows = (
                [r for r in rows if r["session"] == 2]
                + first
                + [r for r in rows if r["session"] > 2]
            )
        for row in rows:
            yield json.dumps(row)


def _line(
    base: dict[str, Any], at: dict[str, Any], role: str, who: str, instrument: str, items: Any
) -> dict[str, Any]:
    return {
        **base,
        **at,
        "respondent": role,
        "respondent_id": who,
        "instrument": instrument,
        "items": items,
    }


def _ors(tenths: int) -> dict[str, float]:
    return _four(tenths, ("individually", "interpersonally", "socially", "overall"))


def _srs(tenths: int) -> dict[str, float]:
    return _four(tenths, ("relationship", "goals", "approach", "overall"))


def _four(tenths: int, keys: tuple[str, ...]) -> dict[str, float]:
    """Four items of 0.0–10.0 adding up to ``tenths`` / 10."""
    base, rest = divmod(tenths, 4)
    return {k: (base + (1 if i < rest else 0)) / 10 for i, k in enumerate(keys)}


def _phq(total: int) -> dict[str, int]:
    return {str(i): min(3, max(0, total - 3 * (i - 1))) for i in range(1, 10)}


@dataclass(frozen=True)
class Miss:
    band: int
    session: int
    p: float
    fitted: float
    true: float
    tolerance: float


def misses(
    fitted: Any, truth: KnownTrajectories, z: float, percentiles: tuple[int, ...] = (25, 50, 75)
) -> tuple[int, list[Miss]]:
    """The fitted percentiles of one instrument (``InstrumentTrajectories``) further from the
    truth than z standard errors plus 0.05 (the ORS's rounding to 0.1); also how many were
    checked."""
    checked, missed = 0, []
    for band_key, trajectory in fitted.bands.items():
        for session_key, cell in trajectory.sessions.items():
            band, session = int(band_key), int(session_key)
            for pct in percentiles:
                p = pct / 100
                value = getattr(cell, f"p{pct}")
                true = truth.quantile(band, session, p)
                tolerance = z * truth.standard_error(band, session, p, cell.n) + 0.05
                checked += 1
                if abs(value - true) > tolerance:
                    missed.append(Miss(band, session, p, value, true, tolerance))
    return checked, missed
