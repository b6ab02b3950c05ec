"""What the matching engine reads and answers: intakes, therapists, effectiveness records,
constraint checks, score parts and proposals (frozen values), and the codes of the hard
constraints and score parts in the order they are reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from services.intake.domain.matching.config import SEVERITIES

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
