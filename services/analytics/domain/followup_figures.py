"""What happened after an action on an alert, as pure rules: the network's own evidence of which
responses repair ruptures, and a supervisor's view of follow-up.

For each action code (an alert counts once under each code recorded on it, at its first
recording): the share of its alerts whose rule resolved them within 2 and within 4 sessions of
the action, and the change in the client's alliance and outcome from the action's session to
the mean of the next sessions (both on a 0–100 scale of the instrument's range, higher
better). Per site, and per therapist shrunk toward the site as therapist effectiveness is
(``services.analytics.effectiveness.shrink``), each with its n.

No false certainty about the future: an alert whose episode has not yet had ``k`` sessions
since the action, and is not resolved, is left out of the ``k``-session share (too early to
tell), not counted as a failure; a change needs a score at or before the action and one after.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.analytics.effectiveness import RATE, Estimate, shrink

HORIZONS: tuple[int, ...] = (2, 4)
NEXT_SESSIONS = 4  # the sessions after the action whose mean the change is measured to
CHANGE: tuple[float, float] = (-100.0, 100.0)
AGE_BANDS: tuple[tuple[str, timedelta | None], ...] = (
    ("under_1_day", timedelta(days=1)),
    ("1_to_3_days", timedelta(days=3)),
    ("3_to_7_days", timedelta(days=7)),
    ("7_days_or_more", None),
)


@dataclass(frozen=True)
class ActionCase:
    """One alert under one action code: when it was acted on and what followed."""

    site_id: str
    therapist_id: str
    code: str
    action_session: int  # the episode's session when the action was recorded
    resolved_session: int | None  # when its rule cleared it (None: not, or closed by hand)
    last_session: int  # the episode's latest session so far
    alliance: Mapping[int, float] = field(default_factory=dict)  # session → 0–100
    outcome: Mapping[int, float] = field(default_factory=dict)  # session → 0–100, higher better


def resolved_within(case: ActionCase, sessions: int) -> bool | None:
    """Whether the alert resolved within ``sessions`` sessions of the action; None when it is
    too early to tell (not resolved, and fewer sessions than that have happened since)."""
    if (
        case.resolved_session is not None
        and case.resolved_session - case.action_session <= sessions
    ):
        return True
    if case.last_session - case.action_session >= sessions:
        return False
    return None


def change_after(series: Mapping[int, float], action_session: int) -> float | None:
    """The mean of the next sessions' values minus the last value at or before the action."""
    before = [s for s in series if s <= action_session]
    after = [
        series[s] for s in sorted(series) if action_session < s <= action_session + NEXT_SESSIONS
    ]
    if not before or not after:
        return None
    return statistics.fmean(after) - series[max(before)]


def on_scale(total: float, low: float, high: float, higher_is_better: bool) -> float:
    """A total as a share of its instrument's range, 0–100, higher better."""
    share = 100 * (total - low) / (high - low) if high > low else 0.0
    return share if higher_is_better else 100 - share


def session_at(sessions: Iterable[tuple[int, datetime]], at: datetime) -> int | None:
    """The episode's session at a moment: the latest one with a response recorded by then."""
    known = [number for number, recorded in sessions if recorded <= at]
    return max(known) if known else None


@dataclass(frozen=True)
class Figure:
    """One figure, with the number of alerts it stands on (no estimate when n is 0)."""

    n: int
    estimate: Estimate | None


@dataclass(frozen=True)
class ActionFigures:
    code: str
    site_id: str
    therapist_id: str | None  # None: the site's figure
    alerts: int
    resolved_within: dict[int, Figure]
    alliance_change: Figure
    outcome_change: Figure


Measure = Callable[[ActionCase], float | None]


def measures() -> dict[str, tuple[Measure, tuple[float, float], bool]]:
    """Each figure: how a case gives its value (None: not counted), its scale, and whether it
    is a rate."""
    found: dict[str, tuple[Measure, tuple[float, float], bool]] = {}
    for k in HORIZONS:

        def resolved(case: ActionCase, k: int = k) -> float | None:
            outcome = resolved_within(case, k)
            return None if outcome is None else float(outcome)

        found[f"resolved_within_{k}"] = (resolved, RATE, True)
    found["alliance"] = (lambda c: change_after(c.alliance, c.action_session), CHANGE, False)
    found["outcome"] = (lambda c: change_after(c.outcome, c.action_session), CHANGE, False)
    return found


def estimates(
    cases: Sequence[ActionCase], group: Callable[[ActionCase], str]
) -> dict[str, dict[str, Figure]]:
    """Every figure of each group (shrunk toward the cases' mean when there are several)."""
    figures: dict[str, dict[str, Figure]] = defaultdict(dict)
    names = {group(c) for c in cases}
    for name, (measure, bounds, rate) in measures().items():
        values: dict[str, list[float]] = defaultdict(list)
        for case in cases:
            value = measure(case)
            if value is not None:
                values[group(case)].append(value)
        shrunk = shrink(dict(values), bounds, rate=rate)
        for member in names:
            figures[member][name] = Figure(len(values.get(member, [])), shrunk.get(member))
    return figures


def figures_of(
    code: str, site_id: str, therapist_id: str | None, alerts: int, f: dict[str, Figure]
) -> ActionFigures:
    return ActionFigures(
        code=code,
        site_id=site_id,
        therapist_id=therapist_id,
        alerts=alerts,
        resolved_within={k: f[f"resolved_within_{k}"] for k in HORIZONS},
        alliance_change=f["alliance"],
        outcome_change=f["outcome"],
    )


def follow_up_figures(cases: Iterable[ActionCase]) -> list[ActionFigures]:
    """For each site and action code: the site's figures, then each therapist's, shrunk toward
    the site's."""
    by_code: dict[tuple[str, str], list[ActionCase]] = defaultdict(list)
    for case in cases:
        by_code[(case.site_id, case.code)].append(case)
    out: list[ActionFigures] = []
    for (site_id, code), members in sorted(by_code.items()):
        site = estimates(members, lambda c: c.site_id)[site_id]
        out.append(figures_of(code, site_id, None, len(members), site))
        therapists = estimates(members, lambda c: c.therapist_id)
        counts: dict[str, int] = defaultdict(int)
        for case in members:
            counts[case.therapist_id] += 1
        for therapist_id in sorted(therapists):
            out.append(
                figures_of(
                    code, site_id, therapist_id, counts[therapist_id], therapists[therapist_id]
                )
            )
    return out


# -- a supervisor's view of follow-up ------------------------------------------------------------


def age_band(age: timedelta) -> str:
    for name, limit in AGE_BANDS:
        if limit is None or age < limit:
            return name
    raise AssertionError("the last band has no limit")  # pragma: no cover


def unacted_by_age(opened: Iterable[datetime], now: datetime) -> dict[str, int]:
    """Open alerts nobody acted on, counted by how long they have been open."""
    counts = {name: 0 for name, _ in AGE_BANDS}
    for at in opened:
        counts[age_band(max(now - at, timedelta(0)))] += 1
    return counts


def median_hours_to_first_action(pairs: Iterable[tuple[datetime, datetime]]) -> float | None:
    """The median time from an alert's opening to its first recorded action, in hours."""
    hours = [max((acted - opened).total_seconds(), 0.0) / 3600 for opened, acted in pairs]
    return round(statistics.median(hours), 2) if hours else None
