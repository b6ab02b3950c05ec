"""Therapist effectiveness per problem domain, shrunk toward the site (docs/clinical-rules.md,
Therapist effectiveness). Pure: no I/O.

Therapists account for about 5–7% of outcome variance (Wampold & Brown 2005; Schiefele et al.
2017), so a raw mean over three cases is mostly noise. Each therapist's mean is shrunk toward the
site mean by empirical Bayes (a random-intercept model with method-of-moments variance
components): ``estimate = site mean + (1 − B)(therapist mean − site mean)`` with
``B = (σ²/n) / (σ²/n + τ²)``, and a 95% interval from the posterior variance ``(1 − B)σ²/n``.
As in the Match trial (Constantino et al. 2021), a therapist is classed effective / neutral /
ineffective in a domain only with at least ``min_cases`` closed episodes there, and only when the
interval excludes the site's expected value; below that: ``not_enough_data``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Classification = Literal["effective", "neutral", "ineffective", "not_enough_data"]
Z95 = 1.959964


@dataclass(frozen=True)
class ClosedEpisode:
    """What one closed episode says about its therapist."""

    therapist_id: str
    site_id: str
    domains: tuple[str, ...]
    mean_alliance: float | None  # the client's mean alliance, 0–100 scale
    reliably_improved: bool
    deteriorated: bool


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


def shrink(groups: dict[str, list[float]]) -> dict[str, Estimate]:
    """Empirical-Bayes estimates for each group's mean (random intercepts, method of moments)."""
    values = [v for vs in groups.values() for v in vs]
    if not values:
        return {}
    grand = sum(values) / len(values)
    within_ss = sum((v - sum(vs) / len(vs)) ** 2 for vs in groups.values() for v in vs)
    within_df = len(values) - len(groups)
    sigma2 = within_ss / within_df if within_df > 0 else _variance(values)
    if sigma2 <= 0:
        sigma2 = 1e-9
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
        result[group] = Estimate(estimate, estimate - half, estimate + half)
    return result


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
    episodes: Iterable[ClosedEpisode], min_cases: int = 15
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
            }
        )
        improved = shrink(
            {t: [float(e.reliably_improved) for e in es] for t, es in by_therapist.items()}
        )
        deteriorated = shrink(
            {t: [float(e.deteriorated) for e in es] for t, es in by_therapist.items()}
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
                )
            )
    return results
