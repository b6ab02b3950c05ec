"""Counterfactual arms: the same simulated clients under other conditions, and the differences.

The live run (``rapport.simulate_live``) is one arm: clients matched by the intake service and
therapists receiving the alerts analytics raised and notify delivered. The same clients, with
the same luck (common random numbers, see ``rapport.simulate``), are then run offline:

* **matched, alerts off** — the same therapists, who never hear of an alert;
* **first available, alerts on** — each client with the first therapist on the site's list who
  has a place (assignment as usual), therapists told what the analytics rules (the service's own
  domain code, run as ``rapport replay`` runs it) would have raised;
* **first available, alerts off**;
* **matched, alerts on (offline)** — a check that the offline rules reproduce the live arm.

Effect sizes are differences in rates between two arms over the same clients, with 95%
confidence intervals for paired data (each client contributes the difference of their own two
outcomes). The interval is a normal approximation, so it is given only when each arm has at
least ``MIN_EVENTS`` clients with the outcome and as many without; below that (a small network,
a rare outcome) the difference says "too few events for an interval" rather than a false
``[+0.0, +0.0]``. Pure apart from loading the instrument definitions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from rapport.simulate import ClientOutcome, Course, Network, SessionResult, first_available

if TYPE_CHECKING:
    from rapport.simulate_live import LiveRun

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
Z95 = 1.959964
MIN_EVENTS = 5  # the usual rule for a normal approximation: np ≥ 5 and n(1 − p) ≥ 5 per arm
TOO_FEW_EVENTS = "too few events for an interval"
NO_CLIENT_DIFFERED = "no client's outcome differed between the arms"


def replay_records(
    network: Network, course: Course, episode_id: str, result: SessionResult
) -> list[dict[str, Any]]:
    """One session's answers in the replay interchange format (``rapport replay``)."""
    at = START + timedelta(weeks=course.client.arrival_week + result.session_number - 1)
    return [
        {
            "episode_id": episode_id,
            "site_id": course.client.site_id,
            "therapist_id": course.therapist.id,
            "session": result.session_number,
            "at": at.isoformat().replace("+00:00", "Z"),
            "respondent": answer.respondent_role,
            "respondent_id": f"{episode_id}-{answer.respondent_role}",
            "instrument": answer.instrument,
            "items": dict(answer.items),
        }
        for answer in result.answers
    ]


class OfflineRules:
    """The analytics alert rules (``services.analytics.domain``), fed session by session."""

    def __init__(self) -> None:
        from services.analytics.domain import EpisodeState
        from shared.instruments import SHIPPED, load_instruments

        self.instruments = load_instruments(SHIPPED)
        self.states: dict[str, EpisodeState] = {}

    def opened(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        from rapport.replay import replay_lines

        found: list[dict[str, Any]] = []
        replay_lines(
            [json.dumps(r) for r in records],
            self.instruments,
            lambda line: found.append(json.loads(line)),
            states=self.states,
        )
        return found


@dataclass(frozen=True)
class Step:
    """One session of one assigned client's course, as :func:`sessions` walks them. ``result``
    is None only for a client who arrived too late for any session; ``last`` marks the course's
    last step (ended, or the end of the period)."""

    episode_id: str
    course: Course
    result: SessionResult | None
    lines: list[dict[str, Any]]
    last: bool


def sessions(
    network: Network, assignment: Mapping[str, str], alerts_on: bool, with_lines: bool
) -> Iterator[Step]:
    """Every assigned client's episode to its end (or to the end of the period), offline, one
    session at a time. With ``alerts_on`` the therapist receives, before each session, the alert
    kinds the rules opened on the previous session; ``with_lines`` also gives each session's
    answers and alerts as replay lines."""
    rules = OfflineRules() if alerts_on else None
    for client in network.clients:
        therapist_id = assignment.get(client.id)
        if therapist_id is None:
            continue
        course = Course(network.seed, client, network.therapist(therapist_id))
        episode_id = f"sim-{client.id}"
        weeks = network.weeks - client.arrival_week
        if weeks <= 0:
            yield Step(episode_id, course, None, [], last=True)
            continue
        received: frozenset[str] = frozenset()
        for week in range(weeks):
            result = course.session(received)
            lines: list[dict[str, Any]] = []
            if rules is not None or with_lines:
                lines = replay_records(network, course, episode_id, result)
            if rules is not None:
                received = frozenset(a["kind"] for a in rules.opened(lines))
            yield Step(episode_id, course, result, lines, bool(result.ended) or week == weeks - 1)
            if result.ended:
                break


def run_arm(
    network: Network,
    assignment: Mapping[str, str],
    alerts_on: bool,
    records: list[dict[str, Any]] | None = None,
) -> list[ClientOutcome]:
    """Every assigned client's outcome (:func:`sessions`); ``records`` (if given) collects every
    answer and alert."""
    outcomes = []
    for step in sessions(network, assignment, alerts_on, with_lines=records is not None):
        if records is not None:
            records.extend(step.lines)
        if step.last:
            outcomes.append(step.course.outcome())
    return outcomes


@dataclass(frozen=True)
class Rate:
    count: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.count / self.n if self.n else 0.0


@dataclass(frozen=True)
class Difference:
    """``a − b`` over the same clients, with a 95% interval for paired data, or none and
    ``note`` saying why (too few events; every client alike in both arms)."""

    measure: str
    a: Rate
    b: Rate
    estimate: float
    low: float | None
    high: float | None
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    title: str
    arm_a: str
    arm_b: str
    n: int
    differences: tuple[Difference, ...]
    ors_change_a: float
    ors_change_b: float
    ors_difference: tuple[float, float | None, float | None]  # estimate, low, high (ORS points)


def wilson(count: int, n: int) -> Rate:
    """Wilson score interval (95%) for a proportion."""
    if n == 0:
        return Rate(0, 0, 0.0, 0.0)
    p = count / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return Rate(count, n, max(0.0, centre - half), min(1.0, centre + half))


def paired_mean(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean of paired differences with a normal-approximation 95% interval; no interval (None)
    from fewer than two pairs or when every pair differs alike (no variance to estimate)."""
    n = len(values)
    if n == 0:
        return 0.0, None, None
    mean = sum(values) / n
    if n < 2:
        return mean, None, None
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    if variance == 0:
        return mean, None, None
    half = Z95 * math.sqrt(variance / n)
    return mean, mean - half, mean + half


def too_few_events(a: Rate, b: Rate) -> bool:
    return min(a.count, b.count, a.n - a.count, b.n - b.count) < MIN_EVENTS


MEASURES = (
    ("recovered", "recovered (reliable and clinically significant)"),
    ("reliable_improvement", "reliably improved"),
    ("deteriorated", "reliably deteriorated"),
    ("dropped_out", "dropped out"),
)


def compare(
    title: str,
    arm_a: str,
    a: Sequence[ClientOutcome],
    arm_b: str,
    b: Sequence[ClientOutcome],
) -> Comparison:
    by_client = {o.client_id: o for o in b}
    pairs = [(x, by_client[x.client_id]) for x in a if x.client_id in by_client]
    differences = []
    for field_name, label in MEASURES:
        xs = [bool(getattr(x, field_name)) for x, _ in pairs]
        ys = [bool(getattr(y, field_name)) for _, y in pairs]
        rate_a, rate_b = wilson(sum(xs), len(xs)), wilson(sum(ys), len(ys))
        estimate, low, high = paired_mean(
            [float(x) - float(y) for x, y in zip(xs, ys, strict=True)]
        )
        note = ""
        if too_few_events(rate_a, rate_b):
            low = high = None
            note = TOO_FEW_EVENTS
        elif low is None:
            note = NO_CLIENT_DIFFERED
        differences.append(Difference(label, rate_a, rate_b, estimate, low, high, note))
    change_a = [x.ors_change for x, _ in pairs]
    change_b = [y.ors_change for _, y in pairs]
    return Comparison(
        title,
        arm_a,
        arm_b,
        len(pairs),
        tuple(differences),
        sum(change_a) / len(change_a) if change_a else 0.0,
        sum(change_b) / len(change_b) if change_b else 0.0,
        paired_mean([x - y for x, y in zip(change_a, change_b, strict=True)]),
    )


@dataclass(frozen=True)
class Arms:
    outcomes: dict[str, list[ClientOutcome]]
    comparisons: tuple[Comparison, ...]
    first_available: dict[str, str]


LIVE = "matched, alerts delivered (live run)"
MATCHED_OFF = "matched, no alerts"
MATCHED_RULES = "matched, alerts (offline rules)"
FIRST_ON = "first available, alerts (offline rules)"
FIRST_OFF = "first available, no alerts"


def live_outcomes(live: LiveRun) -> list[ClientOutcome]:
    return [course.outcome() for course in live.courses.values()]


def run_all(network: Network, live: LiveRun) -> Arms:
    matched = live.assignment()
    cohort = [c for c in network.clients if c.id in matched]
    usual = first_available(network, cohort)
    outcomes = {
        LIVE: live_outcomes(live),
        MATCHED_OFF: run_arm(network, matched, alerts_on=False),
        MATCHED_RULES: run_arm(network, matched, alerts_on=True),
        FIRST_ON: run_arm(network, usual, alerts_on=True),
        FIRST_OFF: run_arm(network, usual, alerts_on=False),
    }
    comparisons = (
        compare(
            "Feedback-informed alerts: delivered vs not (same matched therapists)",
            LIVE,
            outcomes[LIVE],
            MATCHED_OFF,
            outcomes[MATCHED_OFF],
        ),
        compare(
            "Matching vs first-available assignment (alerts on in both)",
            LIVE,
            outcomes[LIVE],
            FIRST_ON,
            outcomes[FIRST_ON],
        ),
        compare(
            "Matching and alerts together vs neither",
            LIVE,
            outcomes[LIVE],
            FIRST_OFF,
            outcomes[FIRST_OFF],
        ),
    )
    return Arms(outcomes, comparisons, usual)
