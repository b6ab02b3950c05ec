"""Rules 12–13 (docs/clinical-rules.md, "Alert rules"): the client's own goals not progressing,
and little support for the therapy from the people around the client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.analytics.domain.changes import as_float, open_alert, resolve_alert
from services.analytics.domain.kinds import GOALS_NOT_PROGRESSING, LOW_SUPPORT, AlertKey, InputValue
from services.analytics.domain.records import AlertChange, ScoredRecord
from services.analytics.domain.state import EpisodeState
from services.analytics.rules_config import InstrumentThresholds, RuleConfig


def rule_12_goals_not_progressing(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 12 — goals_not_progressing: at a client's goal rating with session ≥ 6, no goal
    rated in it is at least RC (3 points) above that goal's own first rating. Each goal's first
    rating is the first time the client rated it (a goal set later starts later; the set of
    goals may change between sessions). Evaluated at every such rating: it opens when the
    condition holds and no such alert is open, and resolves at a rating where a goal has moved
    by RC; a recurrence opens a new one. Goal attainment studies take a 3-point change on the
    0–10 goal scale as reliable (Edbrooke-Childs et al. 2015)."""
    firsts = state.goal_first.setdefault((record.respondent_id, record.instrument), {})
    for goal, value in record.items.items():
        firsts.setdefault(goal, Decimal(value))
    if record.role != "client":
        return
    rc = th.reliable_change
    best_goal, best = max(
        ((goal, Decimal(value) - firsts[goal]) for goal, value in record.items.items()),
        key=_by_change,
    )
    progressing = best >= rc
    key: AlertKey = (GOALS_NOT_PROGRESSING, record.respondent_id, record.instrument)
    inputs: dict[str, InputValue] = {
        "instrument": record.instrument,
        "goals_rated": len(record.items),
        "largest_change": as_float(best),
        "largest_change_goal_order": _order_of(best_goal, firsts),
        "threshold": as_float(rc),
    }
    if progressing:
        if key in state.open_alerts:
            resolve_alert(state, out, record, key, inputs)
    elif record.session >= config.goals_not_progressing_session and key not in state.open_alerts:
        inputs["evaluated_from_session"] = config.goals_not_progressing_session
        open_alert(
            state,
            out,
            record,
            GOALS_NOT_PROGRESSING,
            record.respondent_id,
            record.instrument,
            inputs,
        )


def rule_13_low_support(
    state: EpisodeState,
    record: ScoredRecord,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 13 — low_support: a client's support rating ≤ 4 at session 1, 2 or 3 opens it, at
    most once per episode; it resolves at a rating of at least 6 at a later session. The support
    of significant others for the therapy predicts whether a client stays and benefits."""
    if record.role != "client":
        return
    rating = record.total
    key: AlertKey = (LOW_SUPPORT, record.respondent_id, record.instrument)
    inputs: dict[str, InputValue] = {
        "instrument": record.instrument,
        "rating": as_float(rating),
    }
    opened = state.open_alerts.get(key)
    if opened is not None:
        if rating >= config.support_recovered_at_least and record.session > opened.session:
            inputs["recovered_at_least"] = as_float(config.support_recovered_at_least)
            resolve_alert(state, out, record, key, inputs)
    elif (
        not state.low_support_opened
        and record.session in config.low_support_sessions
        and rating <= config.low_support_at_most
    ):
        state.low_support_opened = True
        inputs["at_most"] = as_float(config.low_support_at_most)
        open_alert(state, out, record, LOW_SUPPORT, record.respondent_id, record.instrument, inputs)


def _by_change(pair: tuple[str, Decimal]) -> Decimal:
    return pair[1]


def _order_of(goal: str, firsts: dict[str, Decimal]) -> int:
    """Which goal, by the order the client first rated them (1-based): never its id."""
    return list(firsts).index(goal) + 1


@dataclass(frozen=True)
class GoalRating:
    """One rating of one of the client's goals, with its change from that goal's own first
    rating (goal progress, as the timeline and the chart show it)."""

    session: int
    goal: str  # the goal's id (random): the words stay in the feedback service
    order: int  # 1 = the first goal the client rated in the episode
    rating: Decimal
    change_from_first: Decimal
    reliable: bool  # the change reached the instrument's reliable change


def goal_progress(
    records: Iterable[ScoredRecord], reliable_change: Mapping[str, Decimal]
) -> list[GoalRating]:
    """Every client goal rating of the episode by session, each goal's change from its own
    first rating (``reliable_change``: the goal instruments' RC by id; other records are not
    goal ratings)."""
    firsts: dict[tuple[str, str], Decimal] = {}
    out: list[GoalRating] = []
    for record in sorted(records, key=lambda r: r.session):
        rc = reliable_change.get(record.instrument)
        if rc is None or record.role != "client":
            continue
        for goal, value in record.items.items():
            rating = Decimal(value)
            first = firsts.setdefault((record.instrument, goal), rating)
            order = list(firsts).index((record.instrument, goal)) + 1
            change = rating - first
            out.append(GoalRating(record.session, goal, order, rating, change, change >= rc))
    return out


def goal_attained(progress: Sequence[GoalRating]) -> bool | None:
    """Whether, at its latest rating, any goal of the client's is reliably (RC) above its first
    rating; None when the client rated no goal (the episode says nothing on goals)."""
    latest: dict[str, GoalRating] = {}
    for rating in progress:
        latest[rating.goal] = rating
    return any(r.reliable for r in latest.values()) if latest else None
