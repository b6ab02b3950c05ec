"""Hard constraints over the whole roster: an intake resolved against a config
(:class:`ResolvedIntake`), which therapists each constraint excludes, and how many it excluded
(alone or with others)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from services.intake.domain.matching.availability import (
    CELL_MINUTES,
    as_words,
    slot_bits,
    start_bits,
)
from services.intake.domain.matching.config import (
    AGE_GROUP_SCOPES,
    FORMATS,
    UNIT_SCOPES,
    MatchingConfig,
)
from services.intake.domain.matching.roster import Roster
from services.intake.domain.matching.types import (
    BoolArray,
    ExclusionCount,
    Intake,
    IntArray,
    Preference,
    WordArray,
)


@dataclass(slots=True)
class ResolvedIntake:
    """An intake resolved against a config: what each constraint and part needs."""

    intake: Intake
    config: MatchingConfig
    languages: frozenset[str]
    in_person: bool
    telehealth: bool
    in_person_sites: frozenset[str]
    scopes: frozenset[str]
    session_cells: int
    client_starts: WordArray | None
    windows_required: bool
    complexity: tuple[str, ...]
    severity_weight: dict[str, float]


def resolve(intake: Intake, config: MatchingConfig) -> ResolvedIntake:
    p = intake.preferences
    languages = (
        p.language.codes
        if p.language is not None and p.language.strength == "required"
        else intake.languages
    )
    formats = (
        p.format.codes if p.format is not None and p.format.strength == "required" else FORMATS
    )
    if p.site is None:
        sites = frozenset({intake.site})
    elif p.site.strength == "required":
        sites = p.site.codes
    else:
        sites = p.site.codes | {intake.site}
    scopes = {AGE_GROUP_SCOPES.get(intake.age_group, "adults")}
    if intake.unit in UNIT_SCOPES:
        scopes.add(UNIT_SCOPES[intake.unit])
    scopes.update(
        config.domain_scopes[d.code] for d in intake.domains if d.code in config.domain_scopes
    )
    cells = -(-config.session_minutes // CELL_MINUTES)
    client_starts = None
    if p.times is not None:
        client_starts = as_words(start_bits(slot_bits(p.times.windows), cells))
    complexity = tuple(
        name
        for name, present in (
            ("severe", intake.severity == "severe"),
            ("risk", intake.risk),
            ("difficulty in past relationships", intake.difficult_past_relationships),
        )
        if present
    )
    sw = config.severity_weights
    weights = {"mild": sw.mild, "moderate": sw.moderate, "severe": sw.severe}
    return ResolvedIntake(
        intake=intake,
        config=config,
        languages=languages,
        in_person="in_person" in formats or not formats,
        telehealth="telehealth" in formats or not formats,
        in_person_sites=sites,
        scopes=frozenset(scopes),
        session_cells=cells,
        client_starts=client_starts,
        windows_required=p.times is not None and p.times.strength == "required",
        complexity=complexity,
        severity_weight={d.code: weights[d.severity] for d in intake.domains},
    )


def find_violations(req: ResolvedIntake, roster: Roster) -> dict[str, BoolArray]:
    """Per applied hard constraint, which therapists violate it (True = excluded)."""
    intake = req.intake
    p = intake.preferences
    n = roster.size
    out: dict[str, BoolArray] = {"active": ~roster.active}
    conflict = np.zeros(n, dtype=np.bool_)
    conflict[roster.conflicted(intake.client)] = True
    out["no_conflict"] = conflict
    excluded = np.zeros(n, dtype=np.bool_)
    excluded[[roster.index[t] for t in intake.excluded_therapists if t in roster.index]] = True
    out["not_excluded"] = excluded
    declined = np.zeros(n, dtype=np.bool_)
    declined[[roster.index[t] for t in intake.declined_therapists if t in roster.index]] = True
    out["not_declined"] = declined
    out["capacity"] = roster.capacity_left <= 0
    if req.languages:  # none stated is a bad intake (intake_problems), not a filter
        out["language"] = ~roster.has_any("language", req.languages)
    else:
        out["language"] = np.zeros(n, dtype=np.bool_)
    out["location"] = ~reachable(req, roster)
    client_windows = req.client_starts if req.windows_required else None
    out["availability"] = ~roster.common_times(req.session_cells, client_windows)
    competent = np.ones(n, dtype=np.bool_)
    for scope in req.scopes:
        competent &= roster.has_code("scope", scope)
    out["competence"] = ~competent
    for kind, column in (
        ("gender", "gender"),
        ("culture_faith", "background"),
        ("modality", "modality"),
    ):
        pref: Preference | None = getattr(p, kind)
        if pref is not None and pref.strength == "required":
            out[kind] = ~roster.has_any(column, pref.codes)
    return out


def reachable(req: ResolvedIntake, roster: Roster) -> BoolArray:
    """Therapists who can see the client in person at one of their sites, or by telehealth."""
    reach = np.zeros(roster.size, dtype=np.bool_)
    if req.in_person:
        reach |= roster.has_any("site", req.in_person_sites)
    if req.telehealth:
        reach |= reachable_by_telehealth(req, roster)
    return reach


def reachable_by_telehealth(req: ResolvedIntake, roster: Roster) -> BoolArray:
    if req.config.telehealth_across_sites:
        return roster.telehealth
    return roster.telehealth & roster.has_any("site", req.in_person_sites)


def count_violations(violations: Mapping[str, BoolArray], size: int) -> IntArray:
    count = np.zeros(size, dtype=np.int64)
    for column in violations.values():
        count += column
    return count


def exclusion_counts(
    violations: Mapping[str, BoolArray], violated_count: IntArray
) -> tuple[ExclusionCount, ...]:
    alone = violated_count == 1
    return tuple(
        ExclusionCount(code, int(np.count_nonzero(column)), int(np.count_nonzero(column & alone)))
        for code, column in violations.items()
    )
