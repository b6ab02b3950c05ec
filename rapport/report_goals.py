"""The demo report's goals and support figures: goal attainment by site (the share of episodes
in which, at its latest rating, a goal of the client's own is reliably — 3 points or more on the
0–10 scale — above its first rating, with n) and the low-support alerts the services opened."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from rapport.simulate_live import LiveRun

GOAL_RC = 3  # reliable change on the 0–10 goal scale (the goals instrument's)


@dataclass(frozen=True)
class SiteGoals:
    site_id: str
    episodes: int  # episodes with at least one goal rating (the n)
    attained: int  # of which a goal reliably improved at its latest rating
    low_support: int  # low_support alerts opened

    @property
    def share(self) -> float | None:
        return self.attained / self.episodes if self.episodes else None


def goal_attained(ratings: Iterable[Mapping[str, float]]) -> bool | None:
    """Whether, at its latest rating, any goal is at least RC above its own first rating (a goal
    set later starts from its own first); None when no goal was rated."""
    first: dict[str, float] = {}
    latest: dict[str, float] = {}
    for rated in ratings:
        for goal, value in rated.items():
            first.setdefault(goal, value)
            latest[goal] = value
    if not latest:
        return None
    return any(latest[goal] - first[goal] >= GOAL_RC for goal in latest)


def goals_by_site(live: LiveRun, alerts: Iterable[Mapping[str, Any]]) -> list[SiteGoals]:
    """Per site, from the goal ratings the clients gave and the alerts the services opened."""
    low: Counter[str] = Counter()
    for alert in alerts:
        course = live.courses.get(str(alert.get("episode_id")))
        if alert.get("kind") == "low_support" and course is not None:
            low[course.client.site_id] += 1
    episodes: Counter[str] = Counter()
    attained: Counter[str] = Counter()
    for course in live.courses.values():
        ratings = [a.items for r in course.history for a in r.answers if a.instrument == "goals"]
        reached = goal_attained(ratings)
        if reached is None:
            continue
        episodes[course.client.site_id] += 1
        attained[course.client.site_id] += reached
    sites = sorted(set(episodes) | set(low))
    return [SiteGoals(s, episodes[s], attained[s], low[s]) for s in sites]


def goals_json(sites: list[SiteGoals]) -> dict[str, Any]:
    return {
        "by_site": {
            s.site_id: {
                "episodes": s.episodes,
                "goal_attained": s.attained,
                "goal_attainment_rate": s.share,
                "low_support_alerts": s.low_support,
            }
            for s in sites
        },
        "low_support_alerts": sum(s.low_support for s in sites),
    }


def goals_html(sites: list[SiteGoals]) -> str:
    """The report's section on the client's own goals and the support of the people around
    them."""
    rows = "".join(
        f"<tr><td>{escape(s.site_id)}</td>"
        f'<td class="n">{"–" if s.share is None else f"{100 * s.share:.1f}%"}</td>'
        f'<td class="n">{s.attained} / {s.episodes}</td>'
        f'<td class="n">{s.low_support}</td></tr>'
        for s in sites
    )
    total = sum(s.low_support for s in sites)
    return f"""<h2>The client's own goals and the people around them</h2>
<p class="why">Each client set one to three goals in their own words (through the goals route) and
rated each 0–10 every session; support for the therapy from the important people in their life was
rated at the first session and every four after. A goal is attained here when, at its latest rating,
it is reliably above its first (3 points or more on the 0–10 scale). Low-support alerts: a support
rating of 4 or less in the first three sessions ({total} in this run).</p>
<table><tr><th>site</th><th>goal attainment</th><th>episodes with a goal attained / rated</th>
<th>low-support alerts</th></tr>{rows}</table>
"""
