"""The client's own goals and the support of the people around them, in the simulated network.

Each client sets 1–3 goals at the first session (now and then one more at the third) and rates
each active goal 0–10 at every session. A client whose outcome is on track moves at least one
goal by 4–6 points over the first sessions (reliable change on the goal scale is 3 points,
Edbrooke-Childs et al. 2015); a stuck or deteriorating client's goals stay within 2 points of
their first ratings. Support for the therapy is rated at the first session and every four
attended sessions after: about 15% of clients start low (2–4), and most of them recover (7–9) by
the next rating.

Drawn from a random generator of their own (seeded by the episode's id), so adding them leaves
the rest of the simulated network as it was. The labels follow the rules' definitions
(docs/clinical-rules.md, rules 12 and 13) over the drawn ratings.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

GOAL_RC = 3  # reliable change on the 0–10 goal scale
GOALS_FROM_SESSION = 6  # goals_not_progressing is evaluated from this session number
LOW_SUPPORT_AT_MOST, LOW_SUPPORT_SESSIONS, SUPPORT_RECOVERED = 4, (1, 2, 3), 6
SUPPORT_EVERY = 4  # attended sessions between support ratings


@dataclass(frozen=True)
class GoalsAndSupport:
    """Per attended session (index 0 = the first): the goal ratings (goal id → 0–10) and the
    support rating, if one was asked that session."""

    goals: list[dict[str, int]]
    support: list[int | None]


def draw_goals_and_support(episode_id: str, sessions: int, improving: bool) -> GoalsAndSupport:
    rng = random.Random(f"{episode_id}/goals")
    count = rng.randint(1, 3)
    firsts = {f"{episode_id}-g{k}": rng.randint(1, 4) for k in range(1, count + 1)}
    late_goal = f"{episode_id}-g{count + 1}" if sessions >= 3 and rng.random() < 0.15 else None
    moving = rng.choice(sorted(firsts)) if improving else None
    gain = rng.randint(4, 6)
    goals: list[dict[str, int]] = []
    for s in range(1, sessions + 1):
        rated: dict[str, int] = {}
        for goal, first in firsts.items():
            if goal == moving:
                value = first + min(gain, round(1.5 * (s - 1)))  # +3 by the third session
            elif s == 1:
                value = first
            else:  # within 2 points of the first rating
                value = first + rng.choice((-1, 0, 0, 1, 2))
            rated[goal] = min(10, max(0, value))
        if late_goal is not None and s >= 3:
            rated[late_goal] = min(10, 2 + rng.choice((0, 1)))
        goals.append(rated)
    low = rng.random() < 0.15
    start = rng.randint(2, 4) if low else rng.randint(6, 10)
    recovered = rng.random() < 0.7
    support: list[int | None] = []
    for s in range(1, sessions + 1):
        if (s - 1) % SUPPORT_EVERY:
            support.append(None)
        elif s == 1:
            support.append(start)
        elif low and not recovered:
            support.append(rng.randint(3, 5))
        else:
            support.append(rng.randint(7, 9) if low else rng.randint(6, 10))
    return GoalsAndSupport(goals, support)


def goals_not_progressing_at(goals: Sequence[dict[str, int]], numbers: Sequence[int]) -> list[int]:
    """The session numbers where goals_not_progressing opens: at a rating numbered at least 6
    where no goal is RC above its own first rating, unless one is already open (it resolves at a
    rating where a goal is)."""
    firsts: dict[str, int] = {}
    opened, out = False, []
    for rated, number in zip(goals, numbers, strict=True):
        for goal, value in rated.items():
            firsts.setdefault(goal, value)
        progressing = any(value - firsts[goal] >= GOAL_RC for goal, value in rated.items())
        if progressing:
            opened = False
        elif number >= GOALS_FROM_SESSION and not opened:
            opened = True
            out.append(number)
    return out


def low_support_at(support: Sequence[int | None], numbers: Sequence[int]) -> int | None:
    """The session number where low_support opens (at most once an episode), if it does."""
    for rating, number in zip(support, numbers, strict=True):
        if rating is not None and number in LOW_SUPPORT_SESSIONS and rating <= LOW_SUPPORT_AT_MOST:
            return number
    return None
