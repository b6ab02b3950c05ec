"""Words for coordinators: each constraint check and score part in a sentence, an option's
explanation and a proposal's summary (numbers as the engine computed them, never re-derived)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from services.intake.domain.matching.availability import CELL_MINUTES
from services.intake.domain.matching.constraints import ResolvedIntake
from services.intake.domain.matching.roster import EffectivenessTable, Roster
from services.intake.domain.matching.scoring import Scores
from services.intake.domain.matching.types import (
    SCORE_PARTS,
    BoolArray,
    ConstraintCheck,
    DomainReference,
    ExclusionCount,
    Preference,
    ProposalStatus,
    ScoreBreakdown,
    ScorePart,
    Therapist,
)

_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def listed(codes: Iterable[str]) -> str:
    return ", ".join(sorted(codes)) or "none"


def _places(count: int) -> str:
    return f"{count} place{'' if count == 1 else 's'}"


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _when(moment: datetime) -> str:
    return f"{_DAY_NAMES[moment.weekday()]} {moment.day} {moment:%b %H:%M}"


def constraint_words(
    req: ResolvedIntake, roster: Roster, k: int, violations: Mapping[str, BoolArray]
) -> list[ConstraintCheck]:
    """Every applied hard constraint for the therapist at roster index ``k``, held or not, in
    words. One branch per constraint in the order they are reported (a little over 80 lines:
    kept together so that every sentence a coordinator may read is seen at once)."""
    t = roster.therapists[k]
    intake = req.intake
    p = intake.preferences
    out = []
    for code, column in violations.items():
        held = not bool(column[k])
        if code == "active":
            detail = "Active and taking clients" if held else "Inactive: not taking clients"
        elif code == "no_conflict":
            detail = (
                "No recorded conflict of interest or dual relationship with this client"
                if held
                else "A conflict of interest or dual relationship with this client is recorded"
            )
        elif code == "not_excluded":
            detail = (
                "Not a past therapist of this episode"
                if held
                else "A past therapist of this episode: not offered again on rematch"
            )
        elif code == "not_declined":
            detail = (
                "Not declined by the client for this intake"
                if held
                else "Declined by the client for this intake: offered again only because "
                "nobody meets every hard constraint"
            )
        elif code == "capacity":
            left = int(roster.capacity_left[k])
            cap = int(roster.capacity[k])
            detail = (
                f"{_places(left)} free of {cap}"
                if held
                else f"Caseload full ({int(roster.caseload[k])} of {cap})"
            )
        elif code == "language":
            shared = t.languages & req.languages
            detail = (
                f"Speaks {listed(shared)}"
                if held
                else f"Speaks none of {listed(req.languages)} (speaks {listed(t.languages)})"
            )
        elif code == "location":
            detail = _location_words(req, t, held)
        elif code == "availability":
            minutes = req.config.session_minutes
            if held:
                detail = (
                    f"A common {minutes}-minute session time within the client's required windows"
                    if req.windows_required
                    else f"Has weekly times for a {minutes}-minute session"
                )
            elif not t.availability:
                detail = "No availability slots recorded"
            elif req.windows_required:
                detail = f"No {minutes}-minute session time within the client's required windows"
            else:
                detail = f"No slot long enough for a {minutes}-minute session"
        elif code == "competence":
            missing = req.scopes - t.scopes
            detail = (
                f"Competence scope covers {listed(req.scopes)}"
                if held
                else f"Missing competence scope: {listed(missing)}"
            )
        else:
            pref: Preference = getattr(p, code)
            own = {
                "gender": {t.gender} if t.gender else set(),
                "culture_faith": t.background,
                "modality": t.modalities,
            }[code]
            label = code.replace("_", "/")
            detail = (
                f"Required {label} {listed(pref.codes)}: met ({listed(own & pref.codes)})"
                if held
                else f"Required {label} {listed(pref.codes)}: not met ({listed(own)})"
            )
        out.append(ConstraintCheck(code, held, detail))
    return out


def _location_words(req: ResolvedIntake, t: Therapist, held: bool) -> str:
    ways = []
    at = t.sites & req.in_person_sites
    if req.in_person and at:
        ways.append(f"in person at {listed(at)}")
    tele = t.telehealth and (req.config.telehealth_across_sites or bool(at))
    if req.telehealth and tele:
        ways.append("by telehealth")
    if held:
        return "Can see the client " + " or ".join(ways)
    needs = []
    if req.in_person:
        needs.append(f"in person at {listed(req.in_person_sites)}")
    if req.telehealth:
        needs.append("by telehealth")
    return (
        f"Cannot see the client {' or '.join(needs)} "
        f"(based at {listed(t.sites)}, telehealth {'yes' if t.telehealth else 'no'})"
    )


def breakdown_of(
    req: ResolvedIntake, roster: Roster, table: EffectivenessTable, scores: Scores, position: int
) -> ScoreBreakdown:
    k = int(scores.rows[position])
    t = roster.therapists[k]
    intake = req.intake
    config = req.config
    w = config.weights
    p = intake.preferences
    parts = []
    for code in SCORE_PARTS:
        if code not in scores.millis:
            continue
        points = int(scores.millis[code][position]) / 1000
        weight = float(getattr(w, code))
        if code == "effectiveness":
            detail = _effectiveness_words(req, table, t)
        elif code == "specialty":
            specialties = [d.code for d in intake.domains if d.code in t.domains]
            detail = (
                f"Lists {len(specialties)} of the client's {len(intake.domains)} problem domains "
                f"as a specialty ({listed(specialties)})"
            )
        elif code == "time":
            detail = (
                "Has a session time within the client's preferred windows"
                if scores.met["time"][position]
                else "No session time within the client's preferred windows"
            )
        elif code == "wait":
            cell = int(scores.session_cell[position])
            if cell < 0:
                detail = "No session time found"
            else:
                moment = scores.week_start + timedelta(minutes=cell * CELL_MINUTES)
                days = (cell * CELL_MINUTES - scores.now_minutes) / (24 * 60)
                detail = (
                    f"Earliest common session {_when(moment)}, in {days:.1f} days "
                    f"(full credit now, none after {config.wait_horizon_days:g} days)"
                )
        elif code == "experience":
            if req.complexity:
                detail = (
                    f"Complex case ({', '.join(req.complexity)}): "
                    f"{_number(t.years_experience)} years of experience "
                    f"(full credit from {_number(config.experienced_years)})"
                )
            else:
                detail = "Not a complex case: experience not weighted"
        elif code == "caseload":
            detail = (
                f"Caseload {int(roster.caseload[k])} of {int(roster.capacity[k])} "
                f"({_places(int(roster.capacity_left[k]))} free)"
            )
        else:
            pref: Preference = getattr(p, code)
            met = bool(scores.met[code][position])
            label = {"culture_faith": "culture/faith"}.get(code, code)
            detail = f"Preferred {label} {listed(pref.codes)}: {'met' if met else 'not met'}"
        parts.append(ScorePart(code, points, weight, detail))
    cell = int(scores.session_cell[position])
    earliest = scores.week_start + timedelta(minutes=cell * CELL_MINUTES) if cell >= 0 else None
    return ScoreBreakdown(t.id, int(scores.total[position]) / 1000, tuple(parts), earliest)


def _effectiveness_words(req: ResolvedIntake, table: EffectivenessTable, t: Therapist) -> str:
    pieces = []
    for d in req.intake.domains:
        record = table.get(t.id, d.code)
        label = f"{d.code} ({d.severity})"
        if record is None:
            pieces.append(f"{label}: no outcome data yet, counted as neutral")
            continue
        value = table.signal(record)
        if value is None:
            pieces.append(f"{label}: not enough data (n={record.n}), counted as neutral")
            continue
        ref = table.reference.get(d.code, DomainReference())
        imp = record.reliable_improvement_rate
        words = [f"{label}: {record.classification.replace('_', ' ')}"]
        if imp is not None and ref.improvement is not None:
            words.append(
                f"reliable improvement {imp.estimate:.0%} "
                f"[{imp.lower:.0%}–{imp.upper:.0%}] vs {ref.improvement:.0%} reference"
            )
        det = record.deterioration_rate
        if det is not None and ref.deterioration is not None:
            words.append(f"deterioration {det.estimate:.0%} vs {ref.deterioration:.0%}")
        words.append(f"n={record.n}")
        pieces.append(", ".join(words))
    return "; ".join(pieces) or "No problem domains stated"


def explain(breakdown: ScoreBreakdown, checks: Sequence[ConstraintCheck]) -> str:
    missed = [c.detail for c in checks if not c.held]
    head = (
        f"Misses {len(missed)} hard constraint(s): {'; '.join(missed)}."
        if missed
        else "Meets every hard constraint."
    )
    ranked = sorted((p for p in breakdown.parts if p.points != 0), key=lambda p: -abs(p.points))
    contributions = ", ".join(f"{p.code} {p.points:+.2f}" for p in ranked) or "no points"
    return f"{head} Score {breakdown.total:.2f} ({contributions})."


def summary_of(
    status: ProposalStatus,
    eligible: int,
    considered: int,
    offered: int,
    exclusions: Sequence[ExclusionCount],
) -> str:
    if status == "matched":
        return (
            f"{eligible} of {considered} therapists meet every hard constraint; "
            f"offering the best {offered}."
        )
    excluding = sorted((e for e in exclusions if e.excluded), key=lambda e: -e.excluded)
    reasons = "; ".join(
        f"{e.constraint} excluded {e.excluded} ({e.only_reason} for that reason alone)"
        for e in excluding
    )
    if status == "closest":
        return (
            f"No therapist of {considered} meets every hard constraint; offering the "
            f"{offered} closest, each with what it misses. {reasons}."
        )
    if considered == 0:
        return "No therapists are registered."
    return (
        f"No therapist of {considered} can be offered: each is inactive, has a recorded "
        f"conflict, or is a past therapist of this episode. {reasons}."
    )
