"""Client–therapist matching (docs/clinical-rules.md, Matching and Therapist effectiveness;
issue 3).

Pure: no I/O, no database, no clock (``now`` is passed in, in the site's local time), no async.

    roster = Roster.build(therapists)                 # once per registry change
    table = EffectivenessTable(records)               # once per effectiveness update
    proposal = propose(intake, roster, table, config, now)

* **Hard constraints** (:data:`CONSTRAINTS`) decide who may be offered at all: active, capacity
  left, no recorded conflict or dual relationship, not a past therapist of the episode (on
  rematch), not declined by the client for this intake, a shared language, in-person site or
  telehealth feasibility, a common session time, competence scope (age group, couple/family,
  and problem domains such as eating disorders), and each *required* preference.
* **Score**: a transparent weighted sum of parts (:class:`ScorePart`), each a fraction of its
  weight in :class:`MatchWeights`: problem-domain effectiveness (the shrunken estimate's distance
  from the network reference, weighted by severity; "not enough data" counts as neutral, as in
  the Match trial, Constantino et al. 2021), specialty fit, each stated *preferred* preference,
  experience on complex cases (severe, risk, difficulty in past relationships), the earliest
  common session, and caseload balance. Every part is rounded to 0.001 points and the total is
  the sum of the rounded parts, so the explanation adds up exactly and the batch assignment
  optimises whole milli-points.
* **Proposal**: the top options with, for each, which constraints held and what each part
  contributed, in words for a coordinator. When nobody meets every hard constraint: the options
  that come closest, each saying what it misses, and how many therapists each constraint
  excluded — never an empty answer while anyone can be offered. Closest means: the cheapest
  violated constraints in total (:class:`RelaxationCosts`), then the fewest violated, then the
  best score; therapists the client declined come last, after every other near miss, marked
  ``not_declined`` (the client may change their mind; they are never offered ahead of someone
  they have not turned down). Inactive therapists, a recorded conflict or dual relationship and
  the episode's past therapists on rematch are never relaxed (:data:`NEVER_RELAXED`): when
  nobody else is registered the proposal's status is ``none``, with the reasons.

One implementation serves one therapist and ten thousand: the :class:`Roster` keeps the registry
as column arrays (a boolean array per site, language, scope … code and a weekly availability
bitmap per therapist), and every constraint and score part is computed over all therapists at
once with numpy. :func:`hard_constraints` and :func:`score` are the same code on a one-therapist
roster, so a single pair and a proposal can never disagree.

Availability is weekly: 5-minute cells from Monday 00:00 (times are rounded inward to the
5-minute grid). A session is ``session_minutes`` consecutive minutes inside both the therapist's
slots and, when given, the client's windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from services.intake.matching_config import (
    AGE_GROUP_SCOPES,
    AGE_GROUPS,
    CLASSIFICATIONS,
    COMPETENCE_SCOPES,
    FORMATS,
    GENDERS,
    LANGUAGES,
    MODALITIES,
    PROBLEM_DOMAINS,
    SEVERITIES,
    STRENGTHS,
    UNIT_SCOPES,
    UNITS,
    MatchingConfig,
    MatchWeights,
    RelaxationCosts,
    SeverityWeights,
)

__all__ = [
    "AGE_GROUPS",
    "CLASSIFICATIONS",
    "COMPETENCE_SCOPES",
    "CONSTRAINTS",
    "FORMATS",
    "GENDERS",
    "LANGUAGES",
    "MODALITIES",
    "NEVER_RELAXED",
    "PROBLEM_DOMAINS",
    "SCORE_PARTS",
    "SEVERITIES",
    "STRENGTHS",
    "UNITS",
    "ConstraintCheck",
    "DomainReference",
    "Effectiveness",
    "EffectivenessTable",
    "Eligibility",
    "Estimate",
    "ExclusionCount",
    "FieldProblem",
    "Intake",
    "MatchWeights",
    "MatchingConfig",
    "Preference",
    "Preferences",
    "ProblemDomain",
    "Proposal",
    "ProposedOption",
    "RelaxationCosts",
    "Roster",
    "ScoreBreakdown",
    "ScorePart",
    "SeverityWeights",
    "Therapist",
    "TimePreference",
    "WeeklySlot",
    "constraint_checks",
    "eligibility",
    "hard_constraints",
    "intake_problems",
    "propose",
    "score",
    "therapist_problems",
]

Strength = Literal["required", "preferred"]
Severity = Literal["mild", "moderate", "severe"]
AgeGroup = Literal["child", "adolescent", "adult", "older_adult"]
Unit = Literal["individual", "couple", "family"]
Classification = Literal["effective", "neutral", "ineffective", "not_enough_data"]
ProposalStatus = Literal["matched", "closest", "none"]

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating[Any]]
WordArray = npt.NDArray[np.uint64]

# Hard constraints, in the order they are reported. The first three are never relaxed.
CONSTRAINTS: Final = (
    "active",
    "no_conflict",
    "not_excluded",
    "not_declined",
    "capacity",
    "language",
    "location",
    "availability",
    "competence",
    "gender",
    "culture_faith",
    "modality",
)
NEVER_RELAXED: Final = frozenset({"active", "no_conflict", "not_excluded"})

# Score parts, in the order they are reported. Preference parts appear only for stated
# *preferred* preferences; the others always appear (with 0 points when they do not apply).
SCORE_PARTS: Final = (
    "effectiveness",
    "specialty",
    "gender",
    "language",
    "culture_faith",
    "modality",
    "format",
    "site",
    "time",
    "experience",
    "wait",
    "caseload",
)
_PREFERENCE_KINDS: Final = ("gender", "language", "culture_faith", "modality", "format", "site")

_CELL_MINUTES: Final = 5
_DAY_CELLS: Final = 24 * 60 // _CELL_MINUTES
_WEEK_CELLS: Final = 7 * _DAY_CELLS
_WORDS: Final = (_WEEK_CELLS + 63) // 64
_WEEK_BYTES: Final = _WORDS * 8
_ALL_BITS: Final = (1 << 64) - 1
_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --- Value types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeeklySlot:
    """A weekly recurring time: ``day`` 0 = Monday … 6 = Sunday, minutes from midnight, local
    time of the site; ``end_minute`` up to 1440."""

    day: int
    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class Preference:
    """A client preference over codes (any one of them satisfies it): ``required`` is a hard
    constraint, ``preferred`` earns points when met."""

    codes: frozenset[str]
    strength: Strength = "preferred"

    @classmethod
    def required(cls, *codes: str) -> Preference:
        return cls(frozenset(codes), "required")

    @classmethod
    def preferred(cls, *codes: str) -> Preference:
        return cls(frozenset(codes), "preferred")


@dataclass(frozen=True, slots=True)
class TimePreference:
    """When the client can (``required``) or would rather (``preferred``) come."""

    windows: tuple[WeeklySlot, ...]
    strength: Strength = "preferred"


@dataclass(frozen=True, slots=True)
class Preferences:
    """The client's stated preferences; ``None`` means none stated.

    ``format`` codes are ``in_person`` / ``telehealth`` (both, or none, means either). ``site``
    lists the sites the client can attend in person (required: only those; preferred: those
    earn points, the intake's own site stays possible)."""

    gender: Preference | None = None
    language: Preference | None = None
    culture_faith: Preference | None = None
    modality: Preference | None = None
    format: Preference | None = None
    site: Preference | None = None
    times: TimePreference | None = None


@dataclass(frozen=True, slots=True)
class ProblemDomain:
    code: str
    severity: Severity = "moderate"


@dataclass(frozen=True, slots=True)
class Intake:
    """One client (or couple/family) waiting to be matched.

    ``languages`` are the languages therapy can be held in (a shared one is a hard constraint;
    a ``preferences.language`` adds a required or preferred narrower choice).
    ``excluded_therapists`` are therapist ids never to offer (on rematch, the episode's past
    therapists); ``declined_therapists`` those the client declined for this intake: offered
    again only as the last of the closest options, when nobody meets every hard constraint."""

    client: str
    site: str
    domains: tuple[ProblemDomain, ...]
    languages: frozenset[str]
    risk: bool = False
    unit: Unit = "individual"
    age_group: AgeGroup = "adult"
    preferences: Preferences = Preferences()
    prior_therapy: bool = False
    difficult_past_relationships: bool = False
    excluded_therapists: frozenset[str] = frozenset()
    declined_therapists: frozenset[str] = frozenset()

    @property
    def severity(self) -> Severity:
        """The most severe of the problem domains (what ``intake.submitted`` carries)."""
        worst = max((SEVERITIES.index(d.severity) for d in self.domains), default=0)
        return SEVERITIES[worst]


@dataclass(frozen=True, slots=True)
class Therapist:
    """A therapist as the matching engine sees them. ``background`` holds optional,
    self-declared cultural/faith tags; ``exclusions`` holds client pseudonyms the therapist must
    not see (conflicts of interest, dual relationships); ``accepts_new_clients_from`` delays the
    first session (leave, a full diary)."""

    id: str
    sites: frozenset[str]
    languages: frozenset[str]
    capacity: int
    caseload: int = 0
    gender: str | None = None
    background: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    telehealth: bool = False
    availability: tuple[WeeklySlot, ...] = ()
    years_experience: float = 0.0
    active: bool = True
    exclusions: frozenset[str] = frozenset()
    accepts_new_clients_from: date | None = None

    @property
    def capacity_left(self) -> int:
        return max(self.capacity - self.caseload, 0)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A shrunken estimate with its interval (proportions for rates)."""

    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class Effectiveness:
    """One therapist × problem domain, as ``therapist.effectiveness.updated`` carries it."""

    therapist_id: str
    domain: str
    n: int
    classification: Classification
    reliable_improvement_rate: Estimate | None = None
    deterioration_rate: Estimate | None = None
    mean_alliance: Estimate | None = None


@dataclass(frozen=True, slots=True)
class DomainReference:
    """What a therapist's rates are compared with in one domain (the site or network mean)."""

    improvement: float | None = None
    deterioration: float | None = None


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """A field of an input that the API should reject (422), with the rule it breaks."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ConstraintCheck:
    code: str
    held: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ScorePart:
    """One part of a score: ``points`` contributed (rounded to 0.001), the ``weight`` it has at
    full credit, and why, in words."""

    code: str
    points: float
    weight: float
    detail: str


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    therapist_id: str
    total: float
    parts: tuple[ScorePart, ...]
    earliest_session: datetime | None

    def part(self, code: str) -> ScorePart:
        for p in self.parts:
            if p.code == code:
                return p
        raise KeyError(code)


@dataclass(frozen=True, slots=True)
class ExclusionCount:
    """How many therapists a hard constraint excluded, and for how many it was the only reason
    (relaxing it alone would make them eligible)."""

    constraint: str
    excluded: int
    only_reason: int


@dataclass(frozen=True, slots=True)
class ProposedOption:
    rank: int
    therapist_id: str
    score: ScoreBreakdown
    constraints: tuple[ConstraintCheck, ...]
    violated: tuple[str, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class Proposal:
    """``status``: ``matched`` (options meet every hard constraint), ``closest`` (none does; the
    options shown come closest and say what they miss) or ``none`` (nobody can be offered at
    all; ``exclusions`` says why)."""

    client: str
    site: str
    status: ProposalStatus
    options: tuple[ProposedOption, ...]
    eligible: int
    considered: int
    exclusions: tuple[ExclusionCount, ...]
    summary: str


# --- Input checks (for the API's 422s) ---------------------------------------------------------


def _unknown(field_name: str, codes: Iterable[str], known: frozenset[str]) -> list[FieldProblem]:
    bad = sorted(set(codes) - known)
    if not bad:
        return []
    return [FieldProblem(field_name, f"unknown code(s): {', '.join(bad)}; valid: {_codes(known)}")]


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


# --- Weekly availability as bitmaps -----------------------------------------------------------


def _slot_bits(slots: Iterable[WeeklySlot]) -> int:
    """5-minute cells covered by the slots (rounded inward), bit i = cell i from Monday 00:00."""
    bits = 0
    for s in slots:
        first = -(-s.start_minute // _CELL_MINUTES)
        last = min(s.end_minute, 24 * 60) // _CELL_MINUTES
        if last > first and 0 <= s.day <= 6:
            bits |= ((1 << (last - first)) - 1) << (s.day * _DAY_CELLS + first)
    return bits


def _session_starts(bits: int, cells: int) -> int:
    """Cells where a session of ``cells`` cells can start and stay inside ``bits``."""
    starts = bits
    for shift in range(1, cells):
        starts &= bits >> shift
    return starts


def _words(bits: int) -> WordArray:
    return np.frombuffer(bits.to_bytes(_WEEK_BYTES, "little"), dtype="<u8").astype(np.uint64)


def _any_bits(words: WordArray) -> BoolArray:
    found: BoolArray = (words != 0).any(axis=1)
    return found


def _first_set(words: WordArray) -> tuple[IntArray, BoolArray]:
    """Per row, the index of the lowest set bit (and whether there is one)."""
    nonzero = words != 0
    found = nonzero.any(axis=1)
    word_index = nonzero.argmax(axis=1)
    word = words[np.arange(words.shape[0]), word_index]
    lowest = word & (~word + np.uint64(1))
    bit = np.bitwise_count(lowest - np.uint64(1)).astype(np.int64)
    return word_index.astype(np.int64) * 64 + bit, found


def _from_cell(first_day: IntArray, week_start: date, now_cell: int) -> IntArray:
    """The cell from which to look for a session: now, or the therapist's opening day."""
    opening_cell = (first_day - week_start.toordinal()) * _DAY_CELLS
    from_cell: IntArray = np.where(first_day > 0, np.maximum(opening_cell, now_cell), now_cell)
    return from_cell


def _first_start(words: WordArray, from_cell: IntArray) -> IntArray:
    """Per row, the first set cell at or after ``from_cell`` (cells from the Monday 00:00 of the
    week of ``now``, possibly weeks later), repeating weekly; -1 when the row is empty."""
    if from_cell.shape[0] == 0:
        return from_cell.copy()
    in_week = from_cell % _WEEK_CELLS
    base = from_cell - in_week
    first = int(in_week[0])
    if (in_week == first).all():
        # Usually everyone is looked up from now: skip the words before now's word.
        word = first // 64
        after = words[:, word:].copy()
        after[:, 0] &= np.uint64(_ALL_BITS ^ ((1 << (first % 64)) - 1))
        cell, found = _first_set(after)
        cell += word * 64
    else:
        word_of = (in_week // 64)[:, None]
        bit = (in_week % 64).astype(np.uint64)
        partial = ~((np.uint64(1) << bit) - np.uint64(1))
        columns = np.arange(_WORDS)[None, :]
        after = np.where(columns > word_of, words, np.uint64(0))
        after = np.where(columns == word_of, words & partial[:, None], after)
        cell, found = _first_set(after)
    result = np.where(found, base + cell, -1)
    if not found.all():
        cell_next, found_next = _first_set(words)
        result = np.where(found | ~found_next, result, base + _WEEK_CELLS + cell_next)
    return result


# --- The registry as columns ------------------------------------------------------------------


class Roster:
    """The therapist registry as column arrays, ordered by therapist id. Build it once per
    registry change (O(n)); :meth:`reserve` returns a copy with one more client on a
    therapist's caseload, sharing everything else."""

    therapists: tuple[Therapist, ...]
    index: dict[str, int]
    size: int
    active: BoolArray
    telehealth: BoolArray
    capacity: IntArray
    caseload: IntArray
    capacity_left: IntArray
    years: FloatArray
    first_day: IntArray
    _codes: dict[str, dict[str, BoolArray]]
    _conflicts: dict[str, IntArray]
    _availability: list[int]
    _starts: dict[int, tuple[WordArray, BoolArray]]
    _common: dict[tuple[int, bytes], BoolArray]
    _first: dict[tuple[int, int, int, bytes | None], IntArray]

    def __init__(self, therapists: Sequence[Therapist]) -> None:
        ordered = tuple(sorted(therapists, key=lambda t: t.id))
        index = {t.id: k for k, t in enumerate(ordered)}
        if len(index) != len(ordered):
            raise ValueError("therapist ids must be unique")
        n = len(ordered)
        self.therapists = ordered
        self.index = index
        self.size = n
        self.active = np.fromiter((t.active for t in ordered), dtype=np.bool_, count=n)
        self.telehealth = np.fromiter((t.telehealth for t in ordered), dtype=np.bool_, count=n)
        self.capacity = np.fromiter((t.capacity for t in ordered), dtype=np.int64, count=n)
        self.caseload = np.fromiter((t.caseload for t in ordered), dtype=np.int64, count=n)
        self.capacity_left = np.maximum(self.capacity - self.caseload, 0)
        self.years = np.fromiter((t.years_experience for t in ordered), dtype=np.float64, count=n)
        self.first_day = np.fromiter(
            (
                t.accepts_new_clients_from.toordinal() if t.accepts_new_clients_from else 0
                for t in ordered
            ),
            dtype=np.int64,
            count=n,
        )
        kinds = ("site", "language", "gender", "background", "modality", "scope", "domain")
        members: dict[str, dict[str, list[int]]] = {kind: {} for kind in kinds}
        conflicts: dict[str, list[int]] = {}
        for k, t in enumerate(ordered):
            for kind, codes in (
                ("site", t.sites),
                ("language", t.languages),
                ("background", t.background),
                ("modality", t.modalities),
                ("scope", t.scopes),
                ("domain", t.domains),
                ("gender", (t.gender,) if t.gender else ()),
            ):
                table = members[kind]
                for code in codes:
                    table.setdefault(code, []).append(k)
            for client in t.exclusions:
                conflicts.setdefault(client, []).append(k)
        self._codes = {}
        for kind, table in members.items():
            arrays: dict[str, BoolArray] = {}
            for code, rows in table.items():
                column = np.zeros(n, dtype=np.bool_)
                column[rows] = True
                column.flags.writeable = False
                arrays[code] = column
            self._codes[kind] = arrays
        self._conflicts = {c: np.asarray(rows, dtype=np.int64) for c, rows in conflicts.items()}
        self._availability = [_slot_bits(t.availability) for t in ordered]
        self._starts = {}
        self._common = {}
        self._first = {}

    @classmethod
    def build(cls, therapists: Sequence[Therapist]) -> Roster:
        return cls(therapists)

    def reserve(self, therapist_id: str, clients: int = 1) -> Roster:
        """A copy with ``clients`` more on the therapist's caseload (after a confirmed match)."""
        k = self.index[therapist_id]
        copy = object.__new__(Roster)
        copy.__dict__.update(self.__dict__)
        copy.caseload = self.caseload.copy()
        copy.caseload[k] += clients
        copy.capacity_left = np.maximum(self.capacity - copy.caseload, 0)
        return copy

    def has_any(self, kind: str, codes: Iterable[str]) -> BoolArray:
        """Therapists with at least one of the codes (site, language, gender, background,
        modality, scope, domain)."""
        table = self._codes[kind]
        columns = [table[c] for c in codes if c in table]
        if not columns:
            return np.zeros(self.size, dtype=np.bool_)
        if len(columns) == 1:
            return columns[0]
        either: BoolArray = np.logical_or.reduce(columns)
        return either

    def has_code(self, kind: str, code: str) -> BoolArray:
        column = self._codes[kind].get(code)
        return column if column is not None else np.zeros(self.size, dtype=np.bool_)

    def conflicted(self, client: str) -> IntArray:
        return self._conflicts.get(client, np.zeros(0, dtype=np.int64))

    def common_times(self, cells: int, client: WordArray | None) -> BoolArray:
        """Per therapist, whether a session of ``cells`` cells fits both their availability and
        the client's windows (``client``: session starts as words; ``None``: no windows).
        Memoised per window pattern: waiting lists share a few common patterns."""
        starts, has_slot = self.session_starts(cells)
        if client is None:
            return has_slot
        key = (cells, client.tobytes())
        hit = self._common.get(key)
        if hit is None:
            if len(self._common) >= 256:
                self._common.clear()
            hit = self._common[key] = _any_bits(starts & client)
            hit.flags.writeable = False
        return hit

    def first_sessions(
        self,
        cells: int,
        week_start: date,
        now_cell: int,
        rows: IntArray,
        client: WordArray | None = None,
    ) -> IntArray:
        """For the therapists at ``rows``, the first cell (from ``week_start``) at or after
        ``now_cell`` and their opening day where a session fits their availability (and the
        client's windows, when given), -1 when none. Memoised per (session length, now, window
        pattern), so a batch computes each therapist once per pattern."""
        key = (
            cells,
            week_start.toordinal(),
            now_cell,
            None if client is None else client.tobytes(),
        )
        known = self._first.get(key)
        if known is None:
            if len(self._first) >= 128:
                self._first.clear()
            known = self._first[key] = np.full(self.size, -2, dtype=np.int64)
        missing = rows[known[rows] == -2]
        if missing.shape[0]:
            starts, _ = self.session_starts(cells)
            words = starts[missing] if client is None else starts[missing] & client
            from_cell = _from_cell(self.first_day[missing], week_start, now_cell)
            known[missing] = _first_start(words, from_cell)
        found: IntArray = known[rows]
        return found

    def session_starts(self, cells: int) -> tuple[WordArray, BoolArray]:
        """Per therapist, the weekly cells where a session of ``cells`` cells fits, as 32
        64-bit words, and whether there is any."""
        hit = self._starts.get(cells)
        if hit is None:
            packed = b"".join(
                _session_starts(bits, cells).to_bytes(_WEEK_BYTES, "little")
                for bits in self._availability
            )
            words = np.frombuffer(packed, dtype="<u8").astype(np.uint64).reshape(self.size, _WORDS)
            hit = (words, (words != 0).any(axis=1))
            self._starts[cells] = hit
        return hit


class EffectivenessTable:
    """The latest ``therapist.effectiveness.updated`` per therapist × domain, with the reference
    each domain's estimates are compared with: given (e.g. the site mean from analytics), or
    else the mean of all shrunken estimates in the domain weighted by their cases (shrinkage
    pulls every estimate toward the site mean, so their mean is an estimate of it; a therapist
    with one case counts as one case, so "not enough data" moves the reference no more than its
    cases do, and never scores). When several records arrive for the same therapist and domain
    (two sites), the one with more cases wins."""

    def __init__(
        self,
        records: Iterable[Effectiveness] = (),
        reference: Mapping[str, DomainReference] | None = None,
    ) -> None:
        latest: dict[tuple[str, str], Effectiveness] = {}
        for r in records:
            key = (r.therapist_id, r.domain)
            held = latest.get(key)
            if held is None or r.n >= held.n:
                latest[key] = r
        self.records = latest
        improvement: dict[str, list[tuple[float, int]]] = {}
        deterioration: dict[str, list[tuple[float, int]]] = {}
        for r in latest.values():
            if r.reliable_improvement_rate is not None:
                improvement.setdefault(r.domain, []).append(
                    (r.reliable_improvement_rate.estimate, r.n)
                )
            if r.deterioration_rate is not None:
                deterioration.setdefault(r.domain, []).append((r.deterioration_rate.estimate, r.n))
        given = dict(reference or {})
        self.reference: dict[str, DomainReference] = {}
        for domain in set(improvement) | set(deterioration) | set(given):
            g = given.get(domain, DomainReference())
            imp = improvement.get(domain)
            det = deterioration.get(domain)
            self.reference[domain] = DomainReference(
                g.improvement
                if g.improvement is not None
                else (_case_weighted_mean(imp) if imp else None),
                g.deterioration
                if g.deterioration is not None
                else (_case_weighted_mean(det) if det else None),
            )
        self._aligned: dict[int, tuple[tuple[Therapist, ...], dict[str, FloatArray]]] = {}

    def get(self, therapist_id: str, domain: str) -> Effectiveness | None:
        return self.records.get((therapist_id, domain))

    def signal(self, record: Effectiveness) -> float | None:
        """How much better than the domain reference the therapist's shrunken rates are, as a
        proportion (improvement above reference plus deterioration below it); ``None`` when
        there is not enough data (a neutral prior)."""
        if record.classification == "not_enough_data":
            return None
        ref = self.reference.get(record.domain, DomainReference())
        value = 0.0
        used = False
        imp = record.reliable_improvement_rate
        if imp is not None and ref.improvement is not None:
            value += imp.estimate - ref.improvement
            used = True
        det = record.deterioration_rate
        if det is not None and ref.deterioration is not None:
            value -= det.estimate - ref.deterioration
            used = True
        return value if used else None

    def aligned(self, roster: Roster) -> dict[str, FloatArray]:
        """Per domain, the signal of every therapist of the roster (0 when neutral)."""
        key = id(roster.therapists)
        hit = self._aligned.get(key)
        if hit is not None and hit[0] is roster.therapists:
            return hit[1]
        columns: dict[str, FloatArray] = {}
        for (therapist_id, domain), record in self.records.items():
            k = roster.index.get(therapist_id)
            value = self.signal(record)
            if k is None or value is None:
                continue
            column = columns.get(domain)
            if column is None:
                column = columns[domain] = np.zeros(roster.size, dtype=np.float64)
            column[k] = value
        if len(self._aligned) >= 8:
            self._aligned.clear()
        self._aligned[key] = (roster.therapists, columns)
        return columns


def _case_weighted_mean(values: Sequence[tuple[float, int]]) -> float:
    """The mean of estimates weighted by their cases (equal weights when none has a case)."""
    cases = sum(max(n, 0) for _, n in values)
    if cases == 0:
        return sum(v for v, _ in values) / len(values)
    return sum(v * max(n, 0) for v, n in values) / cases


# --- Evaluation: constraints and score parts over the whole roster ----------------------------


@dataclass(slots=True)
class _Request:
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


def _resolve(intake: Intake, config: MatchingConfig) -> _Request:
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
    cells = -(-config.session_minutes // _CELL_MINUTES)
    client_starts = None
    if p.times is not None:
        client_starts = _words(_session_starts(_slot_bits(p.times.windows), cells))
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
    return _Request(
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


def _violations(req: _Request, roster: Roster) -> dict[str, BoolArray]:
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
    out["location"] = ~_reachable(req, roster)
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


def _reachable(req: _Request, roster: Roster) -> BoolArray:
    """Therapists who can see the client in person at one of their sites, or by telehealth."""
    reach = np.zeros(roster.size, dtype=np.bool_)
    if req.in_person:
        reach |= roster.has_any("site", req.in_person_sites)
    if req.telehealth:
        reach |= _reachable_by_telehealth(req, roster)
    return reach


@dataclass(slots=True)
class _Scores:
    """Score parts for the therapists at ``rows`` (roster indexes)."""

    rows: IntArray
    millis: dict[str, IntArray]
    met: dict[str, BoolArray]
    total: IntArray
    session_cell: IntArray
    week_start: datetime
    now_minutes: float


def _week_start(now: datetime) -> datetime:
    return (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)


def _score_rows(
    req: _Request, roster: Roster, table: EffectivenessTable, now: datetime, rows: IntArray
) -> _Scores:
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
            in_format |= _reachable_by_telehealth(req, roster)[rows]
        met["format"] = in_format
        parts["format"] = w.format * in_format

    # Earliest common session (and the time preference): cells from this week's Monday 00:00.
    week_start = _week_start(now)
    now_minutes = (now - week_start).total_seconds() / 60
    now_cell = math.ceil(now_minutes / _CELL_MINUTES - 1e-9)
    day = week_start.date()
    cells = req.session_cells
    if req.client_starts is not None:
        # Within the client's windows where there is a common time, else (preferred windows,
        # or a closest option) the therapist's own first time.
        common = roster.common_times(cells, req.client_starts)[rows]
        session_cell = np.empty(m, dtype=np.int64)
        within = rows[common]
        session_cell[common] = roster.first_sessions(
            cells, day, now_cell, within, req.client_starts
        )
        outside = rows[~common]
        session_cell[~common] = roster.first_sessions(cells, day, now_cell, outside)
    else:
        common = np.ones(m, dtype=np.bool_)
        session_cell = roster.first_sessions(cells, day, now_cell, rows)
    if p.times is not None and p.times.strength == "preferred":
        met["time"] = common
        parts["time"] = w.time * common
    wait_minutes = session_cell * _CELL_MINUTES - now_minutes
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
    return _Scores(rows, millis, met, total, session_cell, week_start, now_minutes)


def _reachable_by_telehealth(req: _Request, roster: Roster) -> BoolArray:
    if req.config.telehealth_across_sites:
        return roster.telehealth
    return roster.telehealth & roster.has_any("site", req.in_person_sites)


def _as_roster(therapists: Roster | Sequence[Therapist]) -> Roster:
    return therapists if isinstance(therapists, Roster) else Roster(therapists)


def _as_table(effectiveness: EffectivenessTable | Iterable[Effectiveness]) -> EffectivenessTable:
    if isinstance(effectiveness, EffectivenessTable):
        return effectiveness
    return EffectivenessTable(effectiveness)


# --- Public functions -------------------------------------------------------------------------


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
    req = _resolve(intake, config or MatchingConfig())
    violations = _violations(req, roster)
    return _checks(req, roster, 0, violations)


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
    req = _resolve(intake, config)
    scores = _score_rows(req, roster, table, now, np.zeros(1, dtype=np.int64))
    return _breakdown(req, roster, table, scores, 0)


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
    req = _resolve(intake, config)
    violations = _violations(req, roster)
    violated_count = _count_violations(violations, roster.size)
    rows = np.flatnonzero(violated_count == 0).astype(np.int64)
    scores = _score_rows(req, roster, effectiveness, now, rows)
    return Eligibility(rows, scores.total, _exclusions(violations, violated_count))


def _count_violations(violations: Mapping[str, BoolArray], size: int) -> IntArray:
    count = np.zeros(size, dtype=np.int64)
    for column in violations.values():
        count += column
    return count


def _exclusions(
    violations: Mapping[str, BoolArray], violated_count: IntArray
) -> tuple[ExclusionCount, ...]:
    alone = violated_count == 1
    return tuple(
        ExclusionCount(code, int(np.count_nonzero(column)), int(np.count_nonzero(column & alone)))
        for code, column in violations.items()
    )


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
    req = _resolve(intake, config)
    want = top if top is not None else config.top
    violations = _violations(req, roster)
    violated_count = _count_violations(violations, roster.size)
    exclusions = _exclusions(violations, violated_count)
    eligible_rows = np.flatnonzero(violated_count == 0).astype(np.int64)
    if eligible_rows.shape[0] > 0:
        status: ProposalStatus = "matched"
        scores = _score_rows(req, roster, table, now, eligible_rows)
        chosen = _best(scores.total, want)
    else:
        barred = np.zeros(roster.size, dtype=np.bool_)
        for code in NEVER_RELAXED:
            barred |= violations[code]
        candidate_rows = np.flatnonzero(~barred).astype(np.int64)
        scores = _score_rows(req, roster, table, now, candidate_rows)
        chosen = _closest(scores.total, _nearness(violations, candidate_rows, config), want)
        status = "closest" if chosen.shape[0] else "none"
    options = []
    for rank, position in enumerate(chosen.tolist(), start=1):
        k = int(scores.rows[position])
        breakdown = _breakdown(req, roster, table, scores, position)
        checks = _checks(req, roster, k, violations)
        missed = tuple(c.code for c in checks if not c.held)
        options.append(
            ProposedOption(
                rank=rank,
                therapist_id=roster.therapists[k].id,
                score=breakdown,
                constraints=tuple(checks),
                violated=missed,
                explanation=_explain(breakdown, checks),
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
        summary=_summary(status, eligible, roster.size, len(options), exclusions),
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


# --- Words for coordinators -------------------------------------------------------------------


def _codes(codes: Iterable[str]) -> str:
    return ", ".join(sorted(codes)) or "none"


def _places(count: int) -> str:
    return f"{count} place{'' if count == 1 else 's'}"


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _when(moment: datetime) -> str:
    return f"{_DAY_NAMES[moment.weekday()]} {moment.day} {moment:%b %H:%M}"


def _checks(
    req: _Request, roster: Roster, k: int, violations: Mapping[str, BoolArray]
) -> list[ConstraintCheck]:
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
                f"Speaks {_codes(shared)}"
                if held
                else f"Speaks none of {_codes(req.languages)} (speaks {_codes(t.languages)})"
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
                f"Competence scope covers {_codes(req.scopes)}"
                if held
                else f"Missing competence scope: {_codes(missing)}"
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
                f"Required {label} {_codes(pref.codes)}: met ({_codes(own & pref.codes)})"
                if held
                else f"Required {label} {_codes(pref.codes)}: not met ({_codes(own)})"
            )
        out.append(ConstraintCheck(code, held, detail))
    return out


def _location_words(req: _Request, t: Therapist, held: bool) -> str:
    ways = []
    at = t.sites & req.in_person_sites
    if req.in_person and at:
        ways.append(f"in person at {_codes(at)}")
    tele = t.telehealth and (req.config.telehealth_across_sites or bool(at))
    if req.telehealth and tele:
        ways.append("by telehealth")
    if held:
        return "Can see the client " + " or ".join(ways)
    needs = []
    if req.in_person:
        needs.append(f"in person at {_codes(req.in_person_sites)}")
    if req.telehealth:
        needs.append("by telehealth")
    return (
        f"Cannot see the client {' or '.join(needs)} "
        f"(based at {_codes(t.sites)}, telehealth {'yes' if t.telehealth else 'no'})"
    )


def _breakdown(
    req: _Request, roster: Roster, table: EffectivenessTable, scores: _Scores, position: int
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
            listed = [d.code for d in intake.domains if d.code in t.domains]
            detail = (
                f"Lists {len(listed)} of the client's {len(intake.domains)} problem domains "
                f"as a specialty ({_codes(listed)})"
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
                moment = scores.week_start + timedelta(minutes=cell * _CELL_MINUTES)
                days = (cell * _CELL_MINUTES - scores.now_minutes) / (24 * 60)
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
            detail = f"Preferred {label} {_codes(pref.codes)}: {'met' if met else 'not met'}"
        parts.append(ScorePart(code, points, weight, detail))
    cell = int(scores.session_cell[position])
    earliest = scores.week_start + timedelta(minutes=cell * _CELL_MINUTES) if cell >= 0 else None
    return ScoreBreakdown(t.id, int(scores.total[position]) / 1000, tuple(parts), earliest)


def _effectiveness_words(req: _Request, table: EffectivenessTable, t: Therapist) -> str:
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


def _explain(breakdown: ScoreBreakdown, checks: Sequence[ConstraintCheck]) -> str:
    missed = [c.detail for c in checks if not c.held]
    head = (
        f"Misses {len(missed)} hard constraint(s): {'; '.join(missed)}."
        if missed
        else "Meets every hard constraint."
    )
    ranked = sorted((p for p in breakdown.parts if p.points != 0), key=lambda p: -abs(p.points))
    contributions = ", ".join(f"{p.code} {p.points:+.2f}" for p in ranked) or "no points"
    return f"{head} Score {breakdown.total:.2f} ({contributions})."


def _summary(
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
