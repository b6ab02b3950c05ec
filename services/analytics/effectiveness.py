"""Therapist effectiveness per problem domain, shrunk toward the site (docs/clinical-rules.md,
Therapist effectiveness). Pure: no I/O.

Therapists account for about 5–7% of outcome variance (Wampold & Brown 2005; Schiefele et al.
2017), so a raw mean over three cases is mostly noise. Each therapist's mean is shrunk toward the
site mean by empirical Bayes (a random-intercept model with method-of-moments variance
components): ``estimate = site mean + (1 − B)(therapist mean − site mean)`` with
``B = (σ²/n) / (σ²/n + τ²)``, and a 95% interval from the posterior variance ``(1 − B)σ²/n``.
As in the Match trial (Constantino et al. 2021), a therapist is classed effective / neutral /
ineffective in a domain only with at least ``min_cases`` closed episodes there, and only when the
interval excludes the site's expected value; below that: ``not_enough_data``, and what is shown to
people (the API, the site report, the demo report) is "not enough data (n of 15 cases)", never a
number.

No false certainty: a rate with every case the same (one case, or none improved) has no
within-therapist variance to estimate, so its sampling variance is bounded below by the
Agresti–Coull proportion ``p̃(1 − p̃)``, ``p̃ = (x + 2)/(n + 4)``; a score whose variance cannot
be estimated at all (a single case) takes the widest its scale allows; every interval stays
within the scale.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Classification = Literal["effective", "neutral", "ineffective", "not_enough_data"]
Z95 = 1.959964
MIN_CASES = 15  # Constantino et al. 2021 profiled therapists on >= 15 cases
RATE: Final = (0.0, 1.0)
ALLIANCE: Final = (0.0, 100.0)


@dataclass(frozen=True)
class ClosedEpisode:
    """What one closed episode says about its therapist."""

    therapist_id: str
    site_id: str
    domains: tuple[str, ...]
    mean_alliance: float | None  # the client's mean alliance, 0–100 scale
    reliably_improved: bool
    deteriorated: bool
    # Whether any of the client's own goals ended reliably (3 points) above its first rating;
    # None: the client rated no goal.
    goal_attained: bool | None = None


@dataclass(frozen=True)
class Estimate:
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class DomainEffectiveness:
    therapist_id: str
    site_id: str
    domain: str
    n: int
    mean_alliance: Estimate | None
    reliable_improvement_rate: Estimate | None
    deterioration_rate: Estimate | None
    classification: Classification
    min_cases: int = MIN_CASES
    # Goal attainment, shrunk like the rates above, over the ``goal_n`` episodes with goals.
    goal_attainment_rate: Estimate | None = None
    goal_n: int = 0

    @property
    def enough_data(self) -> bool:
        return self.n >= self.min_cases


def shrink(
    groups: dict[str, list[float]],
    bounds: tuple[float, float] | None = None,
    rate: bool = False,
) -> dict[str, Estimate]:
    """Empirical-Bayes estimates for each group's mean (random intercepts, method of moments).

    ``bounds`` is the scale's range (intervals are kept within it; a variance that cannot be
    estimated takes the widest the scale allows); ``rate`` marks 0/1 outcomes, whose variance is
    never taken as smaller than the Agresti–Coull proportion's."""
    values = [v for vs in groups.values() for v in vs]
    if not values:
        return {}
    grand = sum(values) / len(values)
    sigma2 = _within_variance(groups, values, bounds, rate)
    means = {g: sum(vs) / len(vs) for g, vs in groups.items() if vs}
    if len(means) > 1:
        spread = _variance(list(means.values()))
        noise = sum(sigma2 / len(groups[g]) for g in means) / len(means)
        tau2 = max(0.0, spread - noise)
    else:
        tau2 = 0.0
    result = {}
    for group, mean in means.items():
        sampling = sigma2 / len(groups[group])
        weight = tau2 / (tau2 + sampling) if tau2 + sampling > 0 else 0.0
        estimate = grand + weight * (mean - grand)
        half = (
            Z95 * math.sqrt(weight * sampling)
            if weight > 0
            else Z95 * math.sqrt(sigma2 / len(values))
        )
        low, high = estimate - half, estimate + half
        if bounds is not None:
            low, high = max(bounds[0], low), min(bounds[1], high)
        result[group] = Estimate(estimate, low, high)
    return result


def _within_variance(
    groups: dict[str, list[float]],
    values: Sequence[float],
    bounds: tuple[float, float] | None,
    rate: bool,
) -> float:
    within_df = len(values) - sum(1 for vs in groups.values() if vs)
    if within_df > 0:
        sigma2: float | None = (
            sum((v - sum(vs) / len(vs)) ** 2 for vs in groups.values() for v in vs) / within_df
        )
    elif len(values) > 1:
        sigma2 = _variance(values)
    else:
        sigma2 = None  # one case: nothing to estimate a variance from
    if rate:
        adjusted = (sum(values) + 2) / (len(values) + 4)
        return max(sigma2 or 0.0, adjusted * (1 - adjusted))
    if sigma2 is None:
        if bounds is None:
            raise ValueError("one case and no bounds: the variance cannot be estimated")
        return ((bounds[1] - bounds[0]) / 2) ** 2
    return max(sigma2, 1e-9)


def _variance(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _classify(
    n: int, improvement: Estimate | None, site_rate: float, min_cases: int
) -> Classification:
    if n < min_cases or improvement is None:
        return "not_enough_data"
    if improvement.lower > site_rate:
        return "effective"
    if improvement.upper < site_rate:
        return "ineffective"
    return "neutral"


def therapist_effectiveness(
    episodes: Iterable[ClosedEpisode], min_cases: int = MIN_CASES
) -> list[DomainEffectiveness]:
    """Per therapist × domain, within each site (the site is the shrinkage target)."""
    by_site_domain: dict[tuple[str, str], dict[str, list[ClosedEpisode]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for episode in episodes:
        for domain in episode.domains:
            by_site_domain[(episode.site_id, domain)][episode.therapist_id].append(episode)
    results: list[DomainEffectiveness] = []
    for (site, domain), by_therapist in sorted(by_site_domain.items()):
        alliance = shrink(
            {
                t: [e.mean_alliance for e in es if e.mean_alliance is not None]
                for t, es in by_therapist.items()
            },
            ALLIANCE,
        )
        improved = shrink(
            {t: [float(e.reliably_improved) for e in es] for t, es in by_therapist.items()},
            RATE,
            rate=True,
        )
        deteriorated = shrink(
            {t: [float(e.deteriorated) for e in es] for t, es in by_therapist.items()},
            RATE,
            rate=True,
        )
        attained = shrink(
            {
                t: [float(e.goal_attained) for e in es if e.goal_attained is not None]
                for t, es in by_therapist.items()
            },
            RATE,
            rate=True,
        )
        all_episodes = [e for es in by_therapist.values() for e in es]
        site_rate = sum(e.reliably_improved for e in all_episodes) / len(all_episodes)
        for therapist, cases in sorted(by_therapist.items()):
            improvement = improved.get(therapist)
            results.append(
                DomainEffectiveness(
                    therapist_id=therapist,
                    site_id=site,
                    domain=domain,
                    n=len(cases),
                    mean_alliance=alliance.get(therapist),
                    reliable_improvement_rate=improvement,
                    deterioration_rate=deteriorated.get(therapist),
                    classification=_classify(len(cases), improvement, site_rate, min_cases),
                    min_cases=min_cases,
                    goal_attainment_rate=attained.get(therapist),
                    goal_n=sum(e.goal_attained is not None for e in cases),
                )
            )
    return results


def not_enough_data(n: int, min_cases: int) -> str:
    """What a person reads instead of an estimate below the minimum number of cases."""
    return f"not enough data ({n} of {min_cases} cases)"


def rate_with_interval(estimate: float, lower: float, upper: float) -> str:
    """A rate as people read it: ``42% [30%–55%]``."""
    return f"{estimate:.0%} [{lower:.0%}–{upper:.0%}]"
