"""Intake HTTP routes for staff front-ends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.assignment import assign
from services.intake.handlers import (
    CLOSED_PHASES,
    MatchingContext,
    confirm,
    decline,
    free_place,
    intake_of,
    propose_for,
    rematch,
    seal_reference,
    single_option_proposal,
    therapist_of,
)
from services.intake.matching import (
    COMPETENCE_SCOPES,
    FORMATS,
    GENDERS,
    LANGUAGES,
    MODALITIES,
    PROBLEM_DOMAINS,
    FieldProblem,
    intake_problems,
    therapist_problems,
)
from services.intake.matching_config import DECLINE_REASONS
from services.intake.models import IntakeEpisode, IntakeIntake, IntakeMatch, IntakeTherapist
from shared.audit import audited, note_site
from shared.auth import CurrentStaff, Staff
from shared.contracts import (
    EPISODE_CLOSED,
    INTAKE_SUBMITTED,
    MATCH_CONFIRMED,
    MATCH_DECLINED,
    Code,
    EpisodeClosed,
    EpisodeMember,
    Id,
    IntakeSubmitted,
    MatchConfirmed,
    MatchDeclined,
    Pseudonym,
)
from shared.crypto import pseudonymise
from shared.events import Event
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of
from shared.vocabulary import one_of

router = APIRouter(prefix="/intake", tags=["intake"])

NOBODY_TO_OFFER = (
    "No therapist can be offered at all (none registered, or every one inactive, conflicted or "
    "a past therapist of the episode): nothing is stored; the problem names the reasons."
)
MANAGE_EPISODES = ("intake_coordinator", "clinical_lead", "site_admin")
READ_EPISODES = ("intake_coordinator", "clinical_lead", "supervisor", "therapist")


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


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "intake")


def _out(row: IntakeEpisode) -> EpisodeOut:
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
    )


@router.post(
    "/episodes",
    dependencies=[audited("intake", "episode.open", "episode")],
    status_code=201,
    response_model=EpisodeOut,
    summary="Open an episode with a chosen therapist",
)
async def open_episode(request: Request, body: EpisodeIn, staff: CurrentStaff) -> EpisodeOut:
    staff.require_role(*MANAGE_EPISODES)
    staff.require_site(body.site_id)
    runtime = _runtime(request)
    settings = runtime.settings
    key = settings.pseudonym_key.get_secret_value()
    client = pseudonymise(key, f"client:{body.site_id}:{body.client_reference}")
    episode_id = str(uuid.uuid4())
    members = [EpisodeMember(respondent=client, role="client")] + [
        EpisodeMember(respondent=pseudonymise(key, f"{episode_id}:{m.reference}"), role=m.role)
        for m in body.members
    ]
    row = IntakeEpisode(
        id=episode_id,
        site_id=body.site_id,
        therapist_id=body.therapist_id,
        client=client,
        client_reference_sealed="",  # sealed below, under the client's own data key
        domains=list(body.domains),
        severity=body.severity,
        members=[m.model_dump() for m in members],
        created_at=datetime.now(UTC),
    )
    async with runtime.transaction() as session:
        row.client_reference_sealed = await seal_reference(
            session, settings, client, body.client_reference, episode_id
        )
        session.add(row)
        await runtime.emit(
            session,
            Event(
                MATCH_CONFIRMED,
                MatchConfirmed(
                    match_id=f"direct-{episode_id}",
                    episode_id=episode_id,
                    site_id=row.site_id,
                    therapist_id=row.therapist_id,
                    client=client,
                    domains=row.domains,
                    severity=body.severity,
                    members=members,
                    confirmed_at=row.created_at,
                ),
                source=runtime.outbox.source,
            ),
        )
    return _out(row)


@router.get(
    "/episodes/{episode_id}",
    dependencies=[audited("intake", "episode.read", "episode", "episode_id")],
    response_model=EpisodeOut,
    summary="One episode",
)
async def get_episode(request: Request, episode_id: Id, staff: CurrentStaff) -> EpisodeOut:
    staff.require_role(*READ_EPISODES)
    async with _runtime(request).sessionmaker() as session:
        row = await session.get(IntakeEpisode, episode_id)
    if (
        row is None
        or not staff.can_access_site(row.site_id)
        or (staff.role == "therapist" and staff.subject != row.therapist_id)
    ):
        raise Problem(404, "Episode not found", f"No episode {episode_id!r} that you may see.")
    note_site(request, row.site_id)
    return _out(row)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Literal["completed", "dropped_out", "withdrawn"]


@router.post(
    "/episodes/{episode_id}/close",
    dependencies=[audited("intake", "episode.close", "episode", "episode_id")],
    response_model=EpisodeOut,
    summary="Close an episode (completed, dropped out or withdrawn)",
)
async def close_episode(
    request: Request, episode_id: Id, body: CloseIn, staff: CurrentStaff
) -> EpisodeOut:
    staff.require_role(*MANAGE_EPISODES, "therapist")
    runtime = _runtime(request)
    async with runtime.transaction() as session:
        row = await session.get(IntakeEpisode, episode_id)
        if (
            row is None
            or not staff.can_access_site(row.site_id)
            or (staff.role == "therapist" and staff.subject != row.therapist_id)
        ):
            raise Problem(
                404, "Episode not found", f"No episode {episode_id!r} that you may close."
            )
        if row.phase in {"closed", "dropped_out", "withdrawn"}:
            raise Problem(
                409,
                "Episode already closed",
                f"The episode is {row.phase}.",
                errors=[{"field": "episode_id", "rule": "already_closed"}],
            )
        row.phase = "closed" if body.reason == "completed" else body.reason
        session.add(row)
        if row.match_id is not None:
            # The place reserved when the match was confirmed is free again.
            await free_place(session, row.therapist_id, datetime.now(UTC))
        await runtime.emit(
            session,
            Event(
                EPISODE_CLOSED,
                EpisodeClosed(
                    episode_id=row.id,
                    site_id=row.site_id,
                    therapist_id=row.therapist_id,
                    reason=body.reason,
                    closed_at=datetime.now(UTC),
                ),
                source=runtime.outbox.source,
            ),
        )
    return _out(row)


# --- Therapist registry (site_admin of every site the therapist works at) --------------------

MANAGE_THERAPISTS = ("site_admin",)
READ_THERAPISTS = ("site_admin", "intake_coordinator", "clinical_lead", "supervisor")
MATCHING_ROLES = ("intake_coordinator", "site_admin")
READ_MATCHES = ("intake_coordinator", "site_admin", "clinical_lead")

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
_RULES = (
    ("unknown code", "unknown_code"),
    ("needs 0 <= start_minute", "impossible_window"),
    ("must be 0 (Monday)", "day_of_week"),
    ("must be 0 or more", "minimum"),
    ("0 or more", "minimum"),
    ("at least one", "required"),
    ("at most once", "unique"),
    ("must not be empty", "required"),
)


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


def _therapist_out(row: IntakeTherapist) -> TherapistOut:
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


def _rule(message: str) -> str:
    return next((rule for text, rule in _RULES if text in message), "invalid")


def _field_errors(problems: Sequence[FieldProblem], prefix: str = "") -> list[dict[str, str]]:
    return [
        {"field": f"{prefix}{p.field}", "rule": _rule(p.message), "message": p.message}
        for p in problems
    ]


def _invalid(errors: list[dict[str, str]]) -> Problem:
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    first = errors[0]
    detail = f"{first['field']}: {first['message']}{more}"
    return Problem(422, "Invalid request", detail, errors=list(errors))


def _apply(row: IntakeTherapist, body: TherapistFields, now: datetime) -> None:
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


def _require_sites(staff: Staff, sites: Sequence[str], field_name: str = "sites") -> None:
    foreign = sorted(s for s in set(sites) if not staff.can_access_site(s))
    if foreign:
        raise Problem(
            403,
            "Site not allowed",
            f"You may not manage therapists at site(s) {', '.join(foreign)}.",
            errors=[{"field": field_name, "rule": "site_scope"}],
        )


def _checked(body: TherapistFields, therapist_id: str, prefix: str = "") -> IntakeTherapist:
    """A registry row for the body, or a 422 naming each field and rule it breaks."""
    row = IntakeTherapist(id=therapist_id, capacity=0, updated_at=datetime.now(UTC))
    _apply(row, body, row.updated_at)
    if body.caseload is None:
        row.caseload = 0
    problems = therapist_problems(therapist_of(row))
    if problems:
        raise _invalid(_field_errors(problems, prefix))
    return row


def _context(request: Request) -> MatchingContext:
    context: MatchingContext = _runtime(request).state["matching"]
    return context


@router.post(
    "/therapists", status_code=201, response_model=TherapistOut, summary="Register a therapist"
)
async def create_therapist(
    request: Request, body: TherapistIn, staff: CurrentStaff
) -> TherapistOut:
    staff.require_role(*MANAGE_THERAPISTS)
    _require_sites(staff, body.sites)
    row = _checked(body, body.id)
    async with _runtime(request).transaction() as session:
        if await session.get(IntakeTherapist, body.id) is not None:
            raise Problem(
                409,
                "Therapist exists",
                f"Therapist {body.id!r} is already registered; use PUT to update.",
                errors=[{"field": "id", "rule": "unique"}],
            )
        session.add(row)
    return _therapist_out(row)


async def _managed(session: AsyncSession, staff: Staff, therapist_id: str) -> IntakeTherapist:
    row = await session.get(IntakeTherapist, therapist_id, with_for_update=True)
    if row is None or not any(staff.can_access_site(s) for s in row.sites):
        raise Problem(404, "Therapist not found", f"No therapist {therapist_id!r} at your sites.")
    _require_sites(staff, row.sites)
    return row


@router.put("/therapists/{therapist_id}", response_model=TherapistOut, summary="Update a therapist")
async def update_therapist(
    request: Request, therapist_id: Id, body: TherapistFields, staff: CurrentStaff
) -> TherapistOut:
    staff.require_role(*MANAGE_THERAPISTS)
    _require_sites(staff, body.sites)
    _checked(body, therapist_id)
    async with _runtime(request).transaction() as session:
        row = await _managed(session, staff, therapist_id)
        _apply(row, body, datetime.now(UTC))
        session.add(row)
    return _therapist_out(row)


@router.post(
    "/therapists/{therapist_id}/deactivate",
    response_model=TherapistOut,
    summary="Deactivate a therapist (never offered again; episodes stay)",
)
async def deactivate_therapist(
    request: Request, therapist_id: Id, staff: CurrentStaff
) -> TherapistOut:
    staff.require_role(*MANAGE_THERAPISTS)
    async with _runtime(request).transaction() as session:
        row = await _managed(session, staff, therapist_id)
        row.active = False
        row.updated_at = datetime.now(UTC)
        session.add(row)
    return _therapist_out(row)


@router.get("/therapists", response_model=list[TherapistOut], summary="Therapists of a site")
async def list_therapists(
    request: Request,
    site_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[TherapistOut]:
    staff.require_role(*READ_THERAPISTS)
    staff.require_site(site_id)
    async with _runtime(request).sessionmaker() as session:
        rows = (await session.execute(select(IntakeTherapist))).scalars().all()
    at_site = [r for r in sorted(rows, key=lambda r: r.id) if site_id in r.sites]
    return [_therapist_out(r) for r in at_site[offset : offset + limit]]


class ImportOut(BaseModel):
    created: int
    updated: int


@router.post(
    "/therapists/import",
    response_model=ImportOut,
    summary="Register or update a whole site's therapists (JSON list; all or nothing)",
)
async def import_therapists(
    request: Request,
    body: Annotated[list[TherapistIn], Body(max_length=5000)],
    staff: CurrentStaff,
) -> ImportOut:
    staff.require_role(*MANAGE_THERAPISTS)
    ids = [t.id for t in body]
    if len(set(ids)) != len(ids):
        raise _invalid(
            [{"field": "id", "rule": "unique", "message": "each therapist id at most once"}]
        )
    for k, item in enumerate(body):
        _require_sites(staff, item.sites, f"{k}.sites")
    errors: list[dict[str, str]] = []
    for k, item in enumerate(body):
        try:
            _checked(item, item.id, f"{k}.")
        except Problem as problem:
            errors += problem.errors
    if errors:
        raise _invalid(errors)
    created = updated = 0
    now = datetime.now(UTC)
    async with _runtime(request).transaction() as session:
        for k, item in enumerate(body):
            row = await session.get(IntakeTherapist, item.id, with_for_update=True)
            if row is None:
                row = IntakeTherapist(id=item.id, capacity=item.capacity, updated_at=now)
                created += 1
            else:
                _require_sites(staff, row.sites, f"{k}.sites")
                updated += 1
            _apply(row, item, now)
            session.add(row)
    return ImportOut(created=created, updated=updated)


# --- Intakes and proposals --------------------------------------------------------------------


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


def _match_out(row: IntakeMatch) -> MatchOut:
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


class IntakeOut(BaseModel):
    intake_id: str
    site_id: str
    client: str
    match: MatchOut


def _preference_json(p: PreferenceIn | None) -> dict[str, Any] | None:
    return None if p is None else {"codes": sorted(set(p.codes)), "strength": p.strength}


@router.post(
    "/intakes",
    dependencies=[audited("intake", "intake.submit", "intake")],
    status_code=201,
    response_model=IntakeOut,
    summary="Submit an intake and get the top therapist options, each explained",
    responses={409: {"description": NOBODY_TO_OFFER}},
)
async def submit_intake(request: Request, body: IntakeIn, staff: CurrentStaff) -> IntakeOut:
    staff.require_role(*MATCHING_ROLES)
    staff.require_site(body.site_id)
    if body.unit != "individual" and not body.members:
        raise _invalid(
            [
                {
                    "field": "members",
                    "rule": "required_for_unit",
                    "message": f"a {body.unit} intake names the other members",
                }
            ]
        )
    runtime = _runtime(request)
    settings = runtime.settings
    key = settings.pseudonym_key.get_secret_value()
    client = pseudonymise(key, f"client:{body.site_id}:{body.client_reference}")
    intake_id = str(uuid.uuid4())
    p = body.preferences
    now = datetime.now(UTC)
    row = IntakeIntake(
        id=intake_id,
        site_id=body.site_id,
        client=client,
        client_reference_sealed="",  # sealed below, under the client's own data key
        request={
            "domains": [d.model_dump() for d in body.domains],
            "languages": sorted(set(body.languages)),
            "risk": body.risk,
            "unit": body.unit,
            "age_group": body.age_group,
            "preferences": {
                "gender": _preference_json(p.gender),
                "language": _preference_json(p.language),
                "culture_faith": _preference_json(p.culture_faith),
                "modality": _preference_json(p.modality),
                "format": _preference_json(p.format),
                "site": _preference_json(p.site),
                "times": None
                if p.times is None
                else {
                    "windows": [w.model_dump() for w in p.times.windows],
                    "strength": p.times.strength,
                },
            },
            "prior_therapy": body.history.prior_therapy,
            "difficult_past_relationships": body.history.difficult_past_relationships,
        },
        members=[
            EpisodeMember(
                respondent=pseudonymise(key, f"{intake_id}:{m.reference}"), role=m.role
            ).model_dump()
            for m in body.members
        ],
        created_at=now,
    )
    engine_intake = intake_of(row)
    problems = intake_problems(engine_intake)
    if problems:
        raise _invalid(_field_errors(problems))
    async with runtime.transaction() as session:
        row.client_reference_sealed = await seal_reference(
            session, settings, client, body.client_reference, intake_id
        )
        session.add(row)
        await runtime.emit(
            session,
            Event(
                INTAKE_SUBMITTED,
                IntakeSubmitted(
                    intake_id=intake_id,
                    site_id=body.site_id,
                    client=client,
                    domains=[d.code for d in body.domains],
                    severity=engine_intake.severity,
                    risk=body.risk,
                    couple_or_family=body.unit != "individual",
                    submitted_at=now,
                ),
                source=runtime.outbox.source,
            ),
        )
        match, events = await propose_for(session, _context(request), row)
        await runtime.emit(session, *events)
    return IntakeOut(
        intake_id=intake_id, site_id=row.site_id, client=client, match=_match_out(match)
    )


async def _intake_at_site(session: AsyncSession, staff: Staff, intake_id: str) -> IntakeIntake:
    row = await session.get(IntakeIntake, intake_id)
    if row is None or not staff.can_access_site(row.site_id):
        raise Problem(404, "Intake not found", f"No intake {intake_id!r} that you may see.")
    return row


@router.post(
    "/intakes/{intake_id}/propose",
    dependencies=[audited("intake", "intake.propose", "intake", "intake_id")],
    status_code=201,
    response_model=MatchOut,
    summary="Propose again (therapists declined for this intake only as the last resort)",
    responses={409: {"description": NOBODY_TO_OFFER}},
)
async def propose_again(request: Request, intake_id: Id, staff: CurrentStaff) -> MatchOut:
    staff.require_role(*MATCHING_ROLES)
    runtime = _runtime(request)
    async with runtime.transaction() as session:
        intake = await _intake_at_site(session, staff, intake_id)
        if intake.status != "waiting":
            raise Problem(
                409,
                "Intake already matched",
                f"Intake {intake_id!r} has a confirmed match; rematch its episode instead.",
                errors=[{"field": "intake_id", "rule": "already_matched"}],
            )
        match, events = await propose_for(session, _context(request), intake)
        await runtime.emit(session, *events)
    return _match_out(match)


async def _match_at_site(session: AsyncSession, staff: Staff, match_id: str) -> IntakeMatch:
    row = await session.get(IntakeMatch, match_id)
    if row is None or not staff.can_access_site(row.site_id):
        raise Problem(404, "Match not found", f"No match {match_id!r} that you may see.")
    return row


@router.get(
    "/matches/{match_id}",
    dependencies=[audited("intake", "match.read", "match", "match_id")],
    response_model=MatchOut,
    summary="One proposal",
)
async def get_match(request: Request, match_id: Id, staff: CurrentStaff) -> MatchOut:
    staff.require_role(*READ_MATCHES)
    async with _runtime(request).sessionmaker() as session:
        return _match_out(await _match_at_site(session, staff, match_id))


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    therapist_id: Id


@router.post(
    "/matches/{match_id}/confirm",
    dependencies=[audited("intake", "match.confirm", "match", "match_id")],
    status_code=201,
    response_model=EpisodeOut,
    summary="Confirm the client's choice: the episode opens (or, on rematch, is transferred)",
    responses={409: {"description": "The place was just taken, or the match already decided"}},
)
async def confirm_match(
    request: Request, match_id: Id, body: ConfirmIn, staff: CurrentStaff
) -> EpisodeOut:
    staff.require_role(*MATCHING_ROLES)
    runtime = _runtime(request)
    async with runtime.transaction() as session:
        match = await _match_at_site(session, staff, match_id)
        episode, events = await confirm(session, runtime.settings, match, body.therapist_id)
        await runtime.emit(session, *events)
    return _out(episode)


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason_code: DeclineReason
    therapist_ids: list[Id] = Field(
        default=[], max_length=20, description="The options declined; all of them when empty."
    )


@router.post(
    "/matches/{match_id}/decline",
    dependencies=[audited("intake", "match.decline", "match", "match_id")],
    response_model=MatchOut,
    summary="Decline a proposal; the next proposal for the intake excludes these therapists",
)
async def decline_match(
    request: Request, match_id: Id, body: DeclineIn, staff: CurrentStaff
) -> MatchOut:
    staff.require_role(*MATCHING_ROLES)
    runtime = _runtime(request)
    async with runtime.transaction() as session:
        match = await _match_at_site(session, staff, match_id)
        offered = {o["therapist_id"] for o in match.options}
        strangers = sorted(set(body.therapist_ids) - offered)
        if strangers:
            raise _invalid(
                [
                    {
                        "field": "therapist_ids",
                        "rule": "not_an_option",
                        "message": f"not options of this match: {', '.join(strangers)}",
                    }
                ]
            )
        declined = await decline(session, match, body.reason_code, body.therapist_ids)
        await runtime.emit(
            session,
            Event(
                MATCH_DECLINED,
                MatchDeclined(
                    match_id=match.id,
                    site_id=match.site_id,
                    client=match.client,
                    declined_therapist_ids=declined,
                    reason_code=body.reason_code,
                ),
                source=runtime.outbox.source,
            ),
        )
    async with runtime.sessionmaker() as session:
        return _match_out(await _match_at_site(session, staff, match_id))


@router.post(
    "/episodes/{episode_id}/rematch",
    dependencies=[audited("intake", "episode.rematch", "episode", "episode_id")],
    status_code=201,
    response_model=MatchOut,
    summary="Propose new therapists for an open episode, excluding its past therapists",
    responses={409: {"description": NOBODY_TO_OFFER}},
)
async def rematch_episode(request: Request, episode_id: Id, staff: CurrentStaff) -> MatchOut:
    staff.require_role(*MATCHING_ROLES, "clinical_lead")
    runtime = _runtime(request)
    async with runtime.transaction() as session:
        episode = await session.get(IntakeEpisode, episode_id)
        if episode is None or not staff.can_access_site(episode.site_id):
            raise Problem(404, "Episode not found", f"No episode {episode_id!r} that you may see.")
        if episode.phase in CLOSED_PHASES:
            raise Problem(
                409,
                "Episode closed",
                f"The episode is {episode.phase}.",
                errors=[{"field": "episode_id", "rule": "already_closed"}],
            )
        match, events = await rematch(session, _context(request), episode)
        await runtime.emit(session, *events)
    return _match_out(match)


# --- Batch waiting-list assignment ------------------------------------------------------------


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


@router.post(
    "/sites/{site_id}/waiting-list/assign",
    dependencies=[audited("intake", "waiting_list.assign", "site", "site_id")],
    response_model=AssignmentOut,
    summary="Assign the site's waiting list optimally (proposals only; nothing is confirmed)",
)
async def assign_waiting_list(request: Request, site_id: Id, staff: CurrentStaff) -> AssignmentOut:
    staff.require_role(*MATCHING_ROLES)
    staff.require_site(site_id)
    runtime = _runtime(request)
    context = _context(request)
    async with runtime.transaction() as session:
        waiting = (
            (
                await session.execute(
                    select(IntakeIntake)
                    .where(IntakeIntake.site_id == site_id, IntakeIntake.status == "waiting")  # type: ignore[arg-type]
                    .order_by(IntakeIntake.created_at)  # type: ignore[arg-type]
                )
            )
            .scalars()
            .all()
        )
        # One place per client: the latest intake of a client stands for them.
        latest = {row.client: row for row in waiting}
        result = assign(
            [intake_of(row) for row in latest.values()],
            await context.roster(session),
            await context.effectiveness(session),
            context.config_for(site_id),
            datetime.now(UTC),
        )
        placements = []
        for placed in result.placements:
            intake = latest[placed.client]
            match, events = await single_option_proposal(
                session, context, intake, placed.therapist_id
            )
            await runtime.emit(session, *events)
            placements.append(
                PlacementOut(
                    intake_id=intake.id,
                    client=placed.client,
                    therapist_id=placed.therapist_id,
                    score=placed.score,
                    match_id=match.id,
                )
            )
    return AssignmentOut(
        site_id=site_id,
        placements=placements,
        unassignable=[
            UnassignableOut(
                intake_id=latest[u.client].id,
                client=u.client,
                reason=u.reason,
                eligible=u.eligible,
                detail=u.detail,
                exclusions=[
                    {
                        "constraint": e.constraint,
                        "excluded": e.excluded,
                        "only_reason": e.only_reason,
                    }
                    for e in u.exclusions
                ],
            )
            for u in result.unplaced
        ],
        total_score=result.total_score,
    )
