"""Rows ↔ domain objects ↔ request and response models: the one place intake converts between
them (the engine's view of a stored therapist or intake, a stored option, the bodies routes
accept and answer with).

Over 500 lines: the request and response models of four resources are data declarations (one
field a line), kept together because both routes and use cases read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.intake.domain.episodes import CloseReason
from services.intake.domain.matching import (
    COMPETENCE_SCOPES,
    FORMATS,
    GENDERS,
    LANGUAGES,
    MODALITIES,
    PROBLEM_DOMAINS,
    Effectiveness,
    Estimate,
    ExclusionCount,
    Intake,
    Preference,
    Preferences,
    ProblemDomain,
    ProposedOption,
    ScoreBreakdown,
    Therapist,
    TimePreference,
    WeeklySlot,
)
from services.intake.domain.matching.config import DECLINE_REASONS
from services.intake.models import (
    IntakeEffectiveness,
    IntakeEpisode,
    IntakeIntake,
    IntakeMatch,
    IntakeTherapist,
)
from shared.contracts import (
    MATCH_PROPOSED,
    Code,
    EpisodeMember,
    Id,
    MatchOption,
    MatchProposed,
    Pseudonym,
)
from shared.events import Event
from shared.vocabulary import one_of

SOURCE = "/rapport/intake"

# --- Request and response models --------------------------------------------------------------

ShortCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# The controlled vocabularies: enums in the OpenAPI, an unknown code refused naming the valid ones.
if TYPE_CHECKING:
    DomainCode = str
    LanguageCode = str
    ModalityCode = str
    ScopeCode = str
    GenderCode = str
    FormatCode = str
    DeclineReason = str
else:
    DomainCode = one_of(PROBLEM_DOMAINS, "problem domain")
    LanguageCode = one_of(LANGUAGES, "language")
    ModalityCode = one_of(MODALITIES, "modality")
    ScopeCode = one_of(COMPETENCE_SCOPES, "competence scope")
    GenderCode = one_of(GENDERS, "gender")
    FormatCode = one_of(FORMATS, "format")
    DeclineReason = one_of(DECLINE_REASONS, "decline reason")


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: str = Field(min_length=1, max_length=128)
    role: Literal["partner", "family"]


class EpisodeIn(BaseModel):
    """Open an episode with a therapist the coordinator has chosen (direct assignment)."""

    model_config = ConfigDict(extra="forbid")
    site_id: Id
    therapist_id: Id
    client_reference: str = Field(
        min_length=1,
        max_length=128,
        description="The clinic's own client reference; stored "
        "encrypted, published only as a pseudonym.",
    )
    domains: list[DomainCode] = Field(default=[], max_length=20)
    severity: Literal["mild", "moderate", "severe"] | None = None
    members: list[MemberIn] = Field(default=[], max_length=10)
    age_group: Literal["child", "adolescent", "adult", "older_adult"] | None = Field(
        default=None,
        description="The client's age group (child 6–12, adolescent 13–17, adult, older_adult): "
        "the clinical cutoffs the rules and charts use are the instrument's for it.",
    )


class EpisodeOut(BaseModel):
    episode_id: str
    site_id: str
    therapist_id: str
    client: str
    phase: str
    members: list[EpisodeMember]
    created_at: datetime
    match_id: str | None = None
    past_therapists: list[str] = []
    # The latest contact (attended session or feedback response); None before the first.
    last_contact_at: datetime | None = None


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: CloseReason


class SlotIn(BaseModel):
    """A weekly time: day 0 = Monday … 6 = Sunday, minutes from midnight (site local time)."""

    model_config = ConfigDict(extra="forbid")
    day: int
    start_minute: int
    end_minute: int


class TherapistFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sites: list[Id] = Field(max_length=50)
    languages: list[LanguageCode] = Field(max_length=50)
    capacity: int
    caseload: int | None = Field(
        default=None,
        description="Clients already seen (onboarding); later kept by confirmed matches and "
        "closed episodes. Left out on update: unchanged.",
    )
    gender: GenderCode | None = None
    background: list[Code] = Field(default=[], max_length=50)
    modalities: list[ModalityCode] = Field(default=[], max_length=50)
    scopes: list[ScopeCode] = Field(default=[], max_length=50)
    domains: list[DomainCode] = Field(default=[], max_length=50)
    telehealth: bool = False
    availability: list[SlotIn] = Field(default=[], max_length=200)
    years_experience: float = 0.0
    active: bool = True
    exclusions: list[Pseudonym] = Field(
        default=[], max_length=500, description="Client pseudonyms never to offer (conflicts)."
    )
    accepts_new_clients_from: date | None = None


class TherapistIn(TherapistFields):
    id: Id


class TherapistOut(TherapistIn):
    caseload: int
    updated_at: datetime


class ImportOut(BaseModel):
    created: int
    updated: int
    dry_run: bool | None = Field(
        default=None, description="true: checked and counted only, nothing stored"
    )


class WaitingListImportOut(BaseModel):
    site_id: str
    created: int
    intake_ids: list[str] = Field(
        description="The new waiting intakes, in the file's order (none on a dry run)"
    )
    already_waiting: int = Field(description="Clients of the file already waiting at the site")
    dry_run: bool | None = Field(
        default=None, description="true: checked and counted only, nothing stored"
    )


class PreferenceIn(BaseModel):
    """Culture/faith tags and sites: the site's own codes."""

    model_config = ConfigDict(extra="forbid")
    codes: list[ShortCode] = Field(min_length=1, max_length=50)
    strength: Literal["required", "preferred"] = "preferred"


class GenderPreferenceIn(PreferenceIn):
    codes: list[GenderCode] = Field(min_length=1, max_length=50)


class LanguagePreferenceIn(PreferenceIn):
    codes: list[LanguageCode] = Field(min_length=1, max_length=50)


class ModalityPreferenceIn(PreferenceIn):
    codes: list[ModalityCode] = Field(min_length=1, max_length=50)


class FormatPreferenceIn(PreferenceIn):
    codes: list[FormatCode] = Field(min_length=1, max_length=50)


class TimesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    windows: list[SlotIn] = Field(min_length=1, max_length=100)
    strength: Literal["required", "preferred"] = "preferred"


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gender: GenderPreferenceIn | None = None
    language: LanguagePreferenceIn | None = None
    culture_faith: PreferenceIn | None = None
    modality: ModalityPreferenceIn | None = None
    format: FormatPreferenceIn | None = None
    site: PreferenceIn | None = None
    times: TimesIn | None = None


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: DomainCode
    severity: Literal["mild", "moderate", "severe"] = "moderate"


class HistoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prior_therapy: bool = False
    difficult_past_relationships: bool = False


class IntakeIn(BaseModel):
    """A client (or couple/family) to match. Only codes reach the matching engine and events;
    the client reference is stored encrypted and published as a pseudonym."""

    model_config = ConfigDict(extra="forbid")
    site_id: Id
    client_reference: str = Field(min_length=1, max_length=128)
    domains: list[DomainIn] = Field(min_length=1, max_length=20)
    languages: list[LanguageCode] = Field(min_length=1, max_length=20)
    risk: bool = False
    unit: Literal["individual", "couple", "family"] = "individual"
    age_group: Literal["child", "adolescent", "adult", "older_adult"] = "adult"
    preferences: PreferencesIn = PreferencesIn()
    history: HistoryIn = HistoryIn()
    members: list[MemberIn] = Field(default=[], max_length=10)


class MatchOut(BaseModel):
    match_id: str
    intake_id: str
    site_id: str
    client: str
    status: Literal["matched", "closest", "none"] = Field(
        description="matched: every option meets every hard constraint; closest: none does, "
        "the options come closest and say what they miss; none: nobody can be offered."
    )
    decision: Literal["proposed", "confirmed", "declined"]
    options: list[dict[str, Any]]
    exclusions: list[dict[str, Any]] = Field(
        description="Per hard constraint: therapists it excluded, and for how many alone."
    )
    summary: str
    eligible: int
    considered: int
    rematch_of_episode: str | None
    chosen_therapist_id: str | None


class IntakeOut(BaseModel):
    intake_id: str
    site_id: str
    client: str
    match: MatchOut


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    therapist_id: Id


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason_code: DeclineReason
    therapist_ids: list[Id] = Field(
        default=[], max_length=20, description="The options declined; all of them when empty."
    )


class PlacementOut(BaseModel):
    intake_id: str
    client: str
    therapist_id: str
    score: float
    match_id: str


class UnassignableOut(BaseModel):
    intake_id: str
    client: str
    reason: Literal["no_eligible_therapist", "capacity_exhausted"]
    eligible: int
    detail: str
    exclusions: list[dict[str, Any]]


class AssignmentOut(BaseModel):
    site_id: str
    placements: list[PlacementOut]
    unassignable: list[UnassignableOut]
    total_score: float


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Id
    # Exactly as given when the client's intake or episode was registered.
    client_reference: str = Field(
        min_length=1,
        max_length=128,
        description="The clinic's own client reference (never stored in clear).",
    )


class ErasureOut(BaseModel):
    request_id: str
    site_id: str
    client: str = Field(description="The client's pseudonym")
    episodes: int
    requested_at: datetime


# --- Rows and the engine ----------------------------------------------------------------------


def therapist_of(row: IntakeTherapist) -> Therapist:
    return Therapist(
        id=row.id,
        sites=frozenset(row.sites),
        languages=frozenset(row.languages),
        capacity=row.capacity,
        caseload=row.caseload,
        gender=row.gender,
        background=frozenset(row.background),
        modalities=frozenset(row.modalities),
        scopes=frozenset(row.scopes),
        domains=frozenset(row.domains),
        telehealth=row.telehealth,
        availability=tuple(WeeklySlot(**slot) for slot in row.availability),
        years_experience=row.years_experience,
        active=row.active,
        exclusions=frozenset(row.exclusions),
        accepts_new_clients_from=row.accepts_new_clients_from,
    )


def effectiveness_of(row: IntakeEffectiveness) -> Effectiveness:
    return Effectiveness(
        therapist_id=row.therapist_id,
        domain=row.domain,
        n=row.n,
        classification=row.classification,  # type: ignore[arg-type]
        reliable_improvement_rate=_estimate(row.estimates.get("reliable_improvement")),
        deterioration_rate=_estimate(row.estimates.get("deterioration")),
        mean_alliance=_estimate(row.estimates.get("mean_alliance")),
    )


def _estimate(value: dict[str, float] | None) -> Estimate | None:
    return Estimate(**value) if value else None


def _preference(value: dict[str, Any] | None) -> Preference | None:
    if value is None:
        return None
    return Preference(frozenset(value["codes"]), value["strength"])


def intake_of(row: IntakeIntake, excluded: Sequence[str] = ()) -> Intake:
    """The engine's view of a stored intake; ``excluded`` names therapists never to offer (the
    episode's past therapists on rematch)."""
    r = row.request
    p = r.get("preferences") or {}
    times = p.get("times")
    return Intake(
        client=row.client,
        site=row.site_id,
        domains=tuple(ProblemDomain(d["code"], d["severity"]) for d in r["domains"]),
        languages=frozenset(r["languages"]),
        risk=bool(r.get("risk", False)),
        unit=r.get("unit", "individual"),
        age_group=r.get("age_group", "adult"),
        preferences=Preferences(
            gender=_preference(p.get("gender")),
            language=_preference(p.get("language")),
            culture_faith=_preference(p.get("culture_faith")),
            modality=_preference(p.get("modality")),
            format=_preference(p.get("format")),
            site=_preference(p.get("site")),
            times=TimePreference(
                tuple(WeeklySlot(**w) for w in times["windows"]), times["strength"]
            )
            if times
            else None,
        ),
        prior_therapy=bool(r.get("prior_therapy", False)),
        difficult_past_relationships=bool(r.get("difficult_past_relationships", False)),
        excluded_therapists=frozenset(excluded),
        declined_therapists=frozenset(row.declined_therapists),
    )


def preference_json(p: PreferenceIn | None) -> dict[str, Any] | None:
    return None if p is None else {"codes": sorted(set(p.codes)), "strength": p.strength}


def apply_therapist(row: IntakeTherapist, body: TherapistFields, now: datetime) -> None:
    row.sites = sorted(set(body.sites))
    row.languages = sorted(set(body.languages))
    row.capacity = body.capacity
    if body.caseload is not None:
        row.caseload = body.caseload
    row.gender = body.gender
    row.background = sorted(set(body.background))
    row.modalities = sorted(set(body.modalities))
    row.scopes = sorted(set(body.scopes))
    row.domains = sorted(set(body.domains))
    row.telehealth = body.telehealth
    row.availability = [a.model_dump() for a in body.availability]
    row.years_experience = body.years_experience
    row.active = body.active
    row.exclusions = sorted(set(body.exclusions))
    row.accepts_new_clients_from = body.accepts_new_clients_from
    row.updated_at = now


# --- Proposals --------------------------------------------------------------------------------


def option_json(
    rank: int,
    breakdown: ScoreBreakdown,
    checks: Sequence[Any],
    violated: Sequence[str],
    explanation: str,
) -> dict[str, Any]:
    return {
        "rank": rank,
        "therapist_id": breakdown.therapist_id,
        "score": breakdown.total,
        "parts": [
            {"code": p.code, "points": p.points, "weight": p.weight, "detail": p.detail}
            for p in breakdown.parts
        ],
        "earliest_session": breakdown.earliest_session.isoformat()
        if breakdown.earliest_session
        else None,
        "constraints": [{"code": c.code, "held": c.held, "detail": c.detail} for c in checks],
        "violated": list(violated),
        "explanation": explanation,
    }


def proposed_json(option: ProposedOption) -> dict[str, Any]:
    return option_json(
        option.rank, option.score, option.constraints, option.violated, option.explanation
    )


def exclusion_json(e: ExclusionCount) -> dict[str, Any]:
    return {"constraint": e.constraint, "excluded": e.excluded, "only_reason": e.only_reason}


def proposed_event(match: IntakeMatch) -> Event[MatchProposed]:
    return Event(
        MATCH_PROPOSED,
        MatchProposed(
            match_id=match.id,
            intake_id=match.intake_id,
            site_id=match.site_id,
            client=match.client,
            options=[
                MatchOption(therapist_id=o["therapist_id"], rank=o["rank"], score=o["score"])
                for o in match.options
            ],
            rematch_of_episode=match.rematch_of_episode,
        ),
        source=SOURCE,
    )


# --- Responses --------------------------------------------------------------------------------


def episode_out(row: IntakeEpisode) -> EpisodeOut:
    return EpisodeOut(
        episode_id=row.id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        client=row.client,
        phase=row.phase,
        members=[EpisodeMember.model_validate(m) for m in row.members],
        created_at=row.created_at,
        match_id=row.match_id,
        past_therapists=list(row.past_therapists or []),
        last_contact_at=row.last_contact_at,
    )


def therapist_out(row: IntakeTherapist) -> TherapistOut:
    return TherapistOut(
        id=row.id,
        sites=row.sites,
        languages=row.languages,
        capacity=row.capacity,
        caseload=row.caseload,
        gender=row.gender,
        background=row.background,
        modalities=row.modalities,
        scopes=row.scopes,
        domains=row.domains,
        telehealth=row.telehealth,
        availability=[SlotIn(**a) for a in row.availability],
        years_experience=row.years_experience,
        active=row.active,
        exclusions=row.exclusions,
        accepts_new_clients_from=row.accepts_new_clients_from,
        updated_at=row.updated_at,
    )


def match_out(row: IntakeMatch) -> MatchOut:
    return MatchOut(
        match_id=row.id,
        intake_id=row.intake_id,
        site_id=row.site_id,
        client=row.client,
        status=row.fit,
        decision=row.status,
        options=row.options,
        exclusions=row.exclusions,
        summary=row.summary,
        eligible=row.eligible,
        considered=row.considered,
        rematch_of_episode=row.rematch_of_episode,
        chosen_therapist_id=row.chosen_therapist_id,
    )


def intake_request(body: IntakeIn) -> dict[str, Any]:
    """What matching needs of an intake, as stored (codes only, never the client reference)."""
    p = body.preferences
    return {
        "domains": [d.model_dump() for d in body.domains],
        "languages": sorted(set(body.languages)),
        "risk": body.risk,
        "unit": body.unit,
        "age_group": body.age_group,
        "preferences": {
            "gender": preference_json(p.gender),
            "language": preference_json(p.language),
            "culture_faith": preference_json(p.culture_faith),
            "modality": preference_json(p.modality),
            "format": preference_json(p.format),
            "site": preference_json(p.site),
            "times": None
            if p.times is None
            else {
                "windows": [w.model_dump() for w in p.times.windows],
                "strength": p.times.strength,
            },
        },
        "prior_therapy": body.history.prior_therapy,
        "difficult_past_relationships": body.history.difficult_past_relationships,
    }
