"""The engine's entry points: one pair (:func:`hard_constraints`, :func:`constraint_checks`,
:func:`score`), the batch assignment's input (:func:`eligibility`) and a proposal
(:func:`propose`) with its relaxation when nobody meets every hard constraint (the closest
options: not declined first, then the cheapest violated constraints, the fewest, the best
score)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.intake.domain.matching.config import MatchingConfig
from services.intake.domain.matching.constraints import (
    count_violations,
    exclusion_counts,
    find_violations,
    resolve,
)
from services.intake.domain.matching.roster import EffectivenessTable, Roster
from services.intake.domain.matching.scoring import score_rows
from services.intake.domain.matching.types import (
    NEVER_RELAXED,
    BoolArray,
    ConstraintCheck,
    Effectiveness,
    ExclusionCount,
    Intake,
    IntArray,
    Proposal,
    ProposalStatus,
    ProposedOption,
    ScoreBreakdown,
    Therapist,
)
from services.intake.domain.matching.wording import (
    breakdown_of,
    constraint_words,
    explain,
    summary_of,
)


def _as_roster(therapists: Roster | Sequence[Therapist]) -> Roster:
    return therapists if isinstance(therapists, Roster) else Roster(therapists)


def _as_table(effectiveness: EffectivenessTable | Iterable[Effectiveness]) -> EffectivenessTable:
    if isinstance(effectiveness, EffectivenessTable):
        return effectiveness
    return EffectivenessTable(effectiveness)


def hard_constraints(
    intake: Intake, therapist: Therapist, config: MatchingConfig | None = None
) -> list[str]:
    """The hard constraints (codes of :data:`CONSTRAINTS`) that exclude ``therapist`` for
    ``intake``; empty when the therapist may be offered (docs/clinical-rules.md, Matching:
    language, site or telehealth feasibility, capacity left, overlapping availability, competence
    scope, exclusions)."""
    return [c.code for c in constraint_checks(intake, therapist, config) if not c.held]


def constraint_checks(
    intake: Intake, therapist: Therapist, config: MatchingConfig | None = None
) -> list[ConstraintCheck]:
    """Every applied hard constraint for this pair, held or not, in words."""
    roster = Roster([therapist])
    req = resolve(intake, config or MatchingConfig())
    violations = find_violations(req, roster)
    return constraint_words(req, roster, 0, violations)


def score(
    intake: Intake,
    therapist: Therapist,
    effectiveness: EffectivenessTable | Iterable[Effectiveness],
    config: MatchingConfig,
    now: datetime,
) -> ScoreBreakdown:
    """The transparent weighted score of one therapist for an intake (hard constraints are not
    checked here; see :func:`hard_constraints`). ``effectiveness`` should hold the whole
    network's records (or a table built from them): the domain references come from it."""
    roster = Roster([therapist])
    table = _as_table(effectiveness)
    req = resolve(intake, config)
    scores = score_rows(req, roster, table, now, np.zeros(1, dtype=np.int64))
    return breakdown_of(req, roster, table, scores, 0)


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The therapists (roster indexes, ascending) who meet every hard constraint for an intake,
    their scores in milli-points, and how many therapists each constraint excluded."""

    rows: IntArray
    score_millis: IntArray
    exclusions: tuple[ExclusionCount, ...]


def eligibility(
    intake: Intake,
    roster: Roster,
    effectiveness: EffectivenessTable,
    config: MatchingConfig,
    now: datetime,
) -> Eligibility:
    """Who may be offered to ``intake`` and how they score (the batch assignment's input)."""
    req = resolve(intake, config)
    violations = find_violations(req, roster)
    violated_count = count_violations(violations, roster.size)
    rows = np.flatnonzero(violated_count == 0).astype(np.int64)
    scores = score_rows(req, roster, effectiveness, now, rows)
    return Eligibility(rows, scores.total, exclusion_counts(violations, violated_count))


def propose(
    intake: Intake,
    therapists: Roster | Sequence[Therapist],
    effectiveness: EffectivenessTable | Iterable[Effectiveness],
    config: MatchingConfig,
    now: datetime,
    top: int | None = None,
) -> Proposal:
    """The top options (``top``, else ``config.top``, default 3) for an intake, each with the
    constraints it meets and what each score part contributed, so that client and coordinator
    decide together (docs/clinical-rules.md, Matching). When no therapist meets every hard
    constraint, the options that come closest (not declined by the client, then the lowest
    total relaxation cost, the fewest violated constraints, the best score), each saying what
    it misses; ``exclusions`` always says how many therapists each constraint excluded. The
    options are empty (status ``none``) only when every therapist is inactive, conflicted or
    excluded.
    Rematch: put the episode's past therapists in ``intake.excluded_therapists``."""
    roster = _as_roster(therapists)
    table = _as_table(effectiveness)
    req = resolve(intake, config)
    want = top if top is not None else config.top
    violations = find_violations(req, roster)
    violated_count = count_violations(violations, roster.size)
    exclusions = exclusion_counts(violations, violated_count)
    eligible_rows = np.flatnonzero(violated_count == 0).astype(np.int64)
    if eligible_rows.shape[0] > 0:
        status: ProposalStatus = "matched"
        scores = score_rows(req, roster, table, now, eligible_rows)
        chosen = _best(scores.total, want)
    else:
        barred = np.zeros(roster.size, dtype=np.bool_)
        for code in NEVER_RELAXED:
            barred |= violations[code]
        candidate_rows = np.flatnonzero(~barred).astype(np.int64)
        scores = score_rows(req, roster, table, now, candidate_rows)
        chosen = _closest(scores.total, _nearness(violations, candidate_rows, config), want)
        status = "closest" if chosen.shape[0] else "none"
    options = []
    for rank, position in enumerate(chosen.tolist(), start=1):
        k = int(scores.rows[position])
        breakdown = breakdown_of(req, roster, table, scores, position)
        checks = constraint_words(req, roster, k, violations)
        missed = tuple(c.code for c in checks if not c.held)
        options.append(
            ProposedOption(
                rank=rank,
                therapist_id=roster.therapists[k].id,
                score=breakdown,
                constraints=tuple(checks),
                violated=missed,
                explanation=explain(breakdown, checks),
            )
        )
    eligible = int(eligible_rows.shape[0])
    return Proposal(
        client=intake.client,
        site=intake.site,
        status=status,
        options=tuple(options),
        eligible=eligible,
        considered=roster.size,
        exclusions=exclusions,
        summary=summary_of(status, eligible, roster.size, len(options), exclusions),
    )


@dataclass(frozen=True, slots=True)
class _Nearness:
    """How near each candidate comes to meeting every hard constraint (aligned with its rows)."""

    declined: IntArray  # 1 when the client declined the therapist: ranked after all others
    cost: IntArray  # total relaxation cost of the violated constraints, in milli-units
    misses: IntArray  # how many relaxable constraints are violated


def _nearness(
    violations: Mapping[str, BoolArray], rows: IntArray, config: MatchingConfig
) -> _Nearness:
    m = rows.shape[0]
    cost = np.zeros(m, dtype=np.int64)
    misses = np.zeros(m, dtype=np.int64)
    for code, column in violations.items():
        if code in NEVER_RELAXED or code == "not_declined":
            continue
        missed = column[rows].astype(np.int64)
        cost += round(getattr(config.relaxation_costs, code) * 1000) * missed
        misses += missed
    declined = violations["not_declined"][rows].astype(np.int64)
    return _Nearness(declined, cost, misses)


def _closest(total: IntArray, near: _Nearness, want: int) -> IntArray:
    """Positions of the ``want`` closest: not declined by the client first, then the lowest
    relaxation cost, the fewest violated constraints, the highest score, roster order."""
    m = total.shape[0]
    if m == 0 or want <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(m), -total, near.misses, near.cost, near.declined))
    return order[:want].astype(np.int64)


def _best(total: IntArray, want: int) -> IntArray:
    """Positions of the ``want`` best: highest total, then roster order."""
    m = total.shape[0]
    if m == 0 or want <= 0:
        return np.zeros(0, dtype=np.int64)
    if m > 4 * want:
        # Partition first: a unique key (total, then roster order) keeps the result exact.
        key = total * (m + 1) + (m - np.arange(m, dtype=np.int64))
        top = np.argpartition(-key, want - 1)[:want]
        return top[np.argsort(-key[top], kind="stable")].astype(np.int64)
    order = np.lexsort((np.arange(m), -total))
    return order[:want].astype(np.int64)
