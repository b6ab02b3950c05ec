"""Input checks: what is wrong with a therapist record or an intake (unknown codes, impossible
slots, a requirement that names nothing), field by field, for the API's 422s."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from services.intake.domain.matching.config import (
    AGE_GROUPS,
    COMPETENCE_SCOPES,
    FORMATS,
    GENDERS,
    LANGUAGES,
    MODALITIES,
    PROBLEM_DOMAINS,
    SEVERITIES,
    STRENGTHS,
    UNITS,
)
from services.intake.domain.matching.types import (
    FieldProblem,
    Intake,
    Preference,
    Therapist,
    WeeklySlot,
)
from services.intake.domain.matching.wording import listed


def _unknown(field_name: str, codes: Iterable[str], known: frozenset[str]) -> list[FieldProblem]:
    bad = sorted(set(codes) - known)
    if not bad:
        return []
    return [FieldProblem(field_name, f"unknown code(s): {', '.join(bad)}; valid: {listed(known)}")]


def _slot_problems(field_name: str, slots: Sequence[WeeklySlot]) -> list[FieldProblem]:
    out = []
    for i, s in enumerate(slots):
        if not 0 <= s.day <= 6:
            out.append(FieldProblem(f"{field_name}.{i}.day", "must be 0 (Monday) to 6 (Sunday)"))
        if not 0 <= s.start_minute < s.end_minute <= 24 * 60:
            wrong = "start_minute" if not 0 <= s.start_minute < 24 * 60 else "end_minute"
            out.append(
                FieldProblem(
                    f"{field_name}.{i}.{wrong}",
                    "needs 0 <= start_minute < end_minute <= 1440 (same day)",
                )
            )
    return out


def therapist_problems(therapist: Therapist) -> list[FieldProblem]:
    """What is wrong with a therapist record (unknown codes, impossible slots, negative
    capacity); empty when it is fine."""
    t = therapist
    out: list[FieldProblem] = []
    if not t.id:
        out.append(FieldProblem("id", "must not be empty"))
    if not t.sites:
        out.append(FieldProblem("sites", "at least one site"))
    if not t.languages:
        out.append(FieldProblem("languages", "at least one language"))
    out += _unknown("languages", t.languages, LANGUAGES)
    out += _unknown("modalities", t.modalities, MODALITIES)
    out += _unknown("scopes", t.scopes, COMPETENCE_SCOPES)
    out += _unknown("domains", t.domains, PROBLEM_DOMAINS)
    if t.gender is not None:
        out += _unknown("gender", [t.gender], GENDERS)
    if t.capacity < 0:
        out.append(FieldProblem("capacity", "must be 0 or more"))
    if t.caseload < 0:
        out.append(FieldProblem("caseload", "must be 0 or more"))
    if t.years_experience < 0 or not math.isfinite(t.years_experience):
        out.append(FieldProblem("years_experience", "must be a finite number, 0 or more"))
    out += _slot_problems("availability", t.availability)
    return out


def intake_problems(intake: Intake) -> list[FieldProblem]:
    """What is wrong with an intake (unknown codes, impossible windows, a requirement that
    names nothing); empty when it is fine."""
    i = intake
    out: list[FieldProblem] = []
    if not i.client:
        out.append(FieldProblem("client", "must not be empty"))
    if not i.site:
        out.append(FieldProblem("site", "must not be empty"))
    if not i.domains:
        out.append(FieldProblem("domains", "at least one problem domain"))
    codes = [d.code for d in i.domains]
    out += _unknown("domains", codes, PROBLEM_DOMAINS)
    if len(set(codes)) != len(codes):
        out.append(FieldProblem("domains", "each problem domain at most once"))
    for k, d in enumerate(i.domains):
        if d.severity not in SEVERITIES:
            out.append(FieldProblem(f"domains.{k}.severity", "mild, moderate or severe"))
    if not i.languages:
        out.append(FieldProblem("languages", "at least one language"))
    out += _unknown("languages", i.languages, LANGUAGES)
    if i.unit not in UNITS:
        out.append(FieldProblem("unit", "individual, couple or family"))
    if i.age_group not in AGE_GROUPS:
        out.append(FieldProblem("age_group", "child, adolescent, adult or older_adult"))
    p = i.preferences
    known: Mapping[str, frozenset[str] | None] = {
        "gender": GENDERS,
        "language": LANGUAGES,
        "culture_faith": None,
        "modality": MODALITIES,
        "format": FORMATS,
        "site": None,
    }
    for kind, vocabulary in known.items():
        pref: Preference | None = getattr(p, kind)
        if pref is None:
            continue
        name = f"preferences.{kind}"
        if pref.strength not in STRENGTHS:
            out.append(FieldProblem(f"{name}.strength", "required or preferred"))
        if not pref.codes:
            out.append(FieldProblem(f"{name}.codes", "at least one code"))
        if vocabulary is not None:
            out += _unknown(f"{name}.codes", pref.codes, vocabulary)
    if p.times is not None:
        if p.times.strength not in STRENGTHS:
            out.append(FieldProblem("preferences.times.strength", "required or preferred"))
        if not p.times.windows:
            out.append(FieldProblem("preferences.times.windows", "at least one window"))
        out += _slot_problems("preferences.times.windows", p.times.windows)
    return out
