"""Score parts over the therapists of a roster: a transparent weighted sum, each part a
fraction of its weight, rounded to whole milli-points (so an explanation adds up exactly and the
batch assignment optimises exact integers)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from services.intake.domain.matching.availability import CELL_MINUTES
from services.intake.domain.matching.constraints import ResolvedIntake, reachable_by_telehealth
from services.intake.domain.matching.roster import EffectivenessTable, Roster
from services.intake.domain.matching.types import (
    SCORE_PARTS,
    BoolArray,
    FloatArray,
    IntArray,
    Preference,
)


@dataclass(slots=True)
class Scores:
    """Score parts for the therapists at ``rows`` (roster indexes)."""

    rows: IntArray
    millis: dict[str, IntArray]
    met: dict[str, BoolArray]
    total: IntArray
    session_cell: IntArray
    week_start: datetime
    now_minutes: float


def monday_of(now: datetime) -> datetime:
    return (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)


def score_rows(
    req: ResolvedIntake, roster: Roster, table: EffectivenessTable, now: datetime, rows: IntArray
) -> Scores:
    intake = req.intake
    config = req.config
    w = config.weights
    p = intake.preferences
    m = rows.shape[0]
    parts: dict[str, FloatArray] = {}
    met: dict[str, BoolArray] = {}

    # Problem-domain effectiveness: per domain, the signal scaled to [-1, 1] times severity,
    # averaged over the client's domains (so severity, not the number of domains, scales it).
    aligned = table.aligned(roster)
    effect = np.zeros(m, dtype=np.float64)
    for d in intake.domains:
        column = aligned.get(d.code)
        if column is not None:
            scaled = np.clip(column[rows] / config.effectiveness_full_scale, -1.0, 1.0)
            effect += req.severity_weight[d.code] * scaled
    parts["effectiveness"] = w.effectiveness * effect / max(len(intake.domains), 1)

    # Specialty fit: severity-weighted share of the client's domains the therapist lists.
    total_weight = sum(req.severity_weight.values())
    fit = np.zeros(m, dtype=np.float64)
    if total_weight > 0:
        for d in intake.domains:
            fit += req.severity_weight[d.code] * roster.has_code("domain", d.code)[rows]
        fit /= total_weight
    parts["specialty"] = w.specialty * fit

    # Each stated preferred (soft) preference.
    for kind, attribute in (
        ("gender", "gender"),
        ("language", "language"),
        ("culture_faith", "background"),
        ("modality", "modality"),
        ("site", "site"),
    ):
        pref: Preference | None = getattr(p, kind)
        if pref is not None and pref.strength == "preferred":
            met[kind] = roster.has_any(attribute, pref.codes)[rows]
            parts[kind] = getattr(w, kind) * met[kind]
    if p.format is not None and p.format.strength == "preferred":
        in_format = np.zeros(m, dtype=np.bool_)
        if "in_person" in p.format.codes:
            in_format |= roster.has_any("site", req.in_person_sites)[rows]
        if "telehealth" in p.format.codes:
            in_format |= reachable_by_telehealth(req, roster)[rows]
        met["format"] = in_format
        parts["format"] = w.format * in_format

    # Earliest common session (and the time preference): cells from this week's Monday 00:00.
    week_start = monday_of(now)
    now_minutes = (now - week_start).total_seconds() / 60
    session_cell, common = _first_sessions(req, roster, week_start, now_minutes, rows)
    if p.times is not None and p.times.strength == "preferred":
        met["time"] = common
        parts["time"] = w.time * common
    wait_minutes = session_cell * CELL_MINUTES - now_minutes
    horizon = config.wait_horizon_days * 24 * 60
    soon = np.clip(1.0 - wait_minutes / horizon, 0.0, 1.0)
    parts["wait"] = w.wait * np.where(session_cell >= 0, soon, 0.0)

    # Experience, for complex cases only.
    complexity = len(req.complexity) / 3
    seasoned = np.minimum(roster.years[rows] / config.experienced_years, 1.0)
    parts["experience"] = w.experience * complexity * seasoned

    # Caseload balance: the share of capacity still free.
    capacity = roster.capacity[rows]
    free = np.where(capacity > 0, roster.capacity_left[rows] / np.maximum(capacity, 1), 0.0)
    parts["caseload"] = w.caseload * np.clip(free, 0.0, 1.0)

    codes = [code for code in SCORE_PARTS if code in parts]
    stacked = np.rint(np.stack([parts[code] for code in codes]) * 1000).astype(np.int64)
    millis: dict[str, IntArray] = dict(zip(codes, stacked, strict=True))
    total: IntArray = stacked.sum(axis=0)
    return Scores(rows, millis, met, total, session_cell, week_start, now_minutes)


def _first_sessions(
    req: ResolvedIntake, roster: Roster, week_start: datetime, now_minutes: float, rows: IntArray
) -> tuple[IntArray, BoolArray]:
    """Per therapist at ``rows``, the cell of the first session (-1 when none) and whether it
    falls within the client's windows (all True when the client gave none): within the windows
    where there is a common time, else (preferred windows, or a closest option) the
    therapist's own first time."""
    now_cell = math.ceil(now_minutes / CELL_MINUTES - 1e-9)
    day = week_start.date()
    cells = req.session_cells
    if req.client_starts is None:
        return roster.first_sessions(cells, day, now_cell, rows), np.ones(
            rows.shape[0], dtype=np.bool_
        )
    common = roster.common_times(cells, req.client_starts)[rows]
    session_cell = np.empty(rows.shape[0], dtype=np.int64)
    within = rows[common]
    session_cell[common] = roster.first_sessions(cells, day, now_cell, within, req.client_starts)
    outside = rows[~common]
    session_cell[~common] = roster.first_sessions(cells, day, now_cell, outside)
    return session_cell, common
