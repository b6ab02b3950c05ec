"""Intake's units of work: each takes the open transaction, changes state through the matching
engine (``matching.py``, ``assignment.py``) and returns the events to write to the outbox in the
same transaction. Routes (``api.py``) and event subscribers both call them.

Capacity is reserved with a conditional ``UPDATE … SET caseload = caseload + 1 WHERE caseload <
capacity`` in the transaction that creates the episode: of two coordinators confirming the last
place at once, the database lets exactly one update the row; the other sees no row updated and
gets a 409 (its whole transaction, episode and outbox rows included, rolls back).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.matching import (
    Effectiveness,
    EffectivenessTable,
    Estimate,
    Intake,
    MatchingConfig,
    Preference,
    Preferences,
    ProblemDomain,
    Proposal,
    ProposedOption,
    Roster,
    ScoreBreakdown,
    Therapist,
    TimePreference,
    WeeklySlot,
    constraint_checks,
    propose,
    score,
)
from services.intake.models import (
    CLIENT_KEYS,
    IntakeEffectiveness,
    IntakeEpisode,
    IntakeIntake,
    IntakeMatch,
    IntakeTherapist,
)
from shared.consumer import Delivery
from shared.contracts import (
    EPISODE_TRANSFERRED,
    MATCH_CONFIRMED,
    MATCH_PROPOSED,
    AllianceAlert,
    EpisodeMember,
    EpisodeTransferred,
    MatchConfirmed,
    MatchOption,
    MatchProposed,
    TherapistEffectivenessUpdated,
)
from shared.crypto import (
    derive_key,
    is_client_sealed,
    seal_for_client,
    unseal,
    unseal_for_client,
)
from shared.erasure import ClientKeys
from shared.events import Event
from shared.problems import Problem
from shared.settings import Settings

SOURCE = "/rapport/intake"
CLOSED_PHASES = frozenset({"closed", "dropped_out", "withdrawn"})
# Values sealed before per-client keys (no ``c1.`` mark) stay readable with this service key.
REFERENCE_KEY_PURPOSE = "intake-client-reference"
CLIENT_KEYS_PURPOSE = "intake-client-keys"


# --- The clinic's client reference, sealed under the client's own data key -------------------


def client_keys(settings: Settings) -> ClientKeys:
    master = derive_key(settings.encryption_key.get_secret_value(), CLIENT_KEYS_PURPOSE)
    return ClientKeys(CLIENT_KEYS, master)


async def seal_reference(
    session: AsyncSession, settings: Settings, client: str, reference: str, associated: str
) -> str:
    key = await client_keys(settings).key(session, client)
    return seal_for_client(key, reference, associated)


async def unseal_reference(
    session: AsyncSession, settings: Settings, client: str, sealed: str, associated: str
) -> str:
    if is_client_sealed(sealed):
        key = await client_keys(settings).existing(session, client)
        if key is None:
            raise LookupError("the client's data key was destroyed (erasure)")
        return unseal_for_client(key, sealed, associated)
    legacy = derive_key(settings.encryption_key.get_secret_value(), REFERENCE_KEY_PURPOSE)
    return unseal(legacy, sealed, associated)


# --- The registry and effectiveness as the engine sees them ----------------------------------


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


def _estimate(value: dict[str, float] | None) -> Estimate | None:
    return Estimate(**value) if value else None


@dataclass
class MatchingContext:
    """Per-site configuration and the registry and effectiveness table, rebuilt only when the
    tables change (checked with one aggregate query per request, so several instances of the
    service stay consistent)."""

    configs: dict[str, MatchingConfig] = field(default_factory=dict)
    default: MatchingConfig = field(default_factory=MatchingConfig)
    _roster: tuple[tuple[Any, ...], Roster] | None = None
    _table: tuple[tuple[Any, ...], EffectivenessTable] | None = None

    def config_for(self, site_id: str) -> MatchingConfig:
        return self.configs.get(site_id, self.default)

    async def roster(self, session: AsyncSession) -> Roster:
        t = IntakeTherapist
        version = tuple(
            (
                await session.execute(
                    select(func.count(), func.max(t.updated_at), func.sum(t.caseload))
                )
            ).one()
        )
        if self._roster is None or self._roster[0] != version:
            rows = (await session.execute(select(t))).scalars().all()
            self._roster = (version, Roster.build([therapist_of(r) for r in rows]))
        return self._roster[1]

    async def effectiveness(self, session: AsyncSession) -> EffectivenessTable:
        e = IntakeEffectiveness
        version = tuple((await session.execute(select(func.count(), func.max(e.updated_at)))).one())
        if self._table is None or self._table[0] != version:
            rows = (await session.execute(select(e))).scalars().all()
            records = [
                Effectiveness(
                    therapist_id=r.therapist_id,
                    domain=r.domain,
                    n=r.n,
                    classification=r.classification,
                    reliable_improvement_rate=_estimate(r.estimates.get("reliable_improvement")),
                    deterioration_rate=_estimate(r.estimates.get("deterioration")),
                    mean_alliance=_estimate(r.estimates.get("mean_alliance")),
                )
                for r in rows
            ]
            self._table = (version, EffectivenessTable(records))
        return self._table[1]


# --- Intakes ----------------------------------------------------------------------------------


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


def _proposed_json(option: ProposedOption) -> dict[str, Any]:
    return option_json(
        option.rank, option.score, option.constraints, option.violated, option.explanation
    )


def _proposed_event(match: IntakeMatch) -> Event[MatchProposed]:
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


class NobodyToOffer(Problem):
    """No therapist can be offered at all (none registered, or every one inactive, conflicted
    or a past therapist of the episode): a 409 naming the reasons, never an empty proposal."""

    def __init__(self, proposal: Proposal, field_name: str) -> None:
        super().__init__(
            409,
            "No therapist can be offered",
            f"{proposal.summary} Register or reactivate a therapist who can see this client, "
            "then propose again; nothing was stored.",
            errors=[
                {
                    "field": field_name,
                    "rule": "no_therapist_to_offer",
                    "message": proposal.summary,
                }
            ],
        )


async def propose_for(
    session: AsyncSession,
    context: MatchingContext,
    intake: IntakeIntake,
    *,
    excluded: Sequence[str] = (),
    rematch_of_episode: str | None = None,
) -> tuple[IntakeMatch, list[Event[Any]]]:
    """Run the engine for a stored intake and store its proposal (``match.proposed``); raises
    :class:`NobodyToOffer` rather than store a proposal without options."""
    roster = await context.roster(session)
    table = await context.effectiveness(session)
    now = datetime.now(UTC)
    proposal: Proposal = propose(
        intake_of(intake, excluded), roster, table, context.config_for(intake.site_id), now
    )
    if not proposal.options:
        raise NobodyToOffer(proposal, "episode_id" if rematch_of_episode else "site_id")
    match = IntakeMatch(
        id=str(uuid.uuid4()),
        intake_id=intake.id,
        site_id=intake.site_id,
        client=intake.client,
        fit=proposal.status,
        options=[_proposed_json(o) for o in proposal.options],
        exclusions=[
            {"constraint": e.constraint, "excluded": e.excluded, "only_reason": e.only_reason}
            for e in proposal.exclusions
        ],
        summary=proposal.summary,
        eligible=proposal.eligible,
        considered=proposal.considered,
        rematch_of_episode=rematch_of_episode,
        created_at=now,
    )
    session.add(match)
    return match, [_proposed_event(match)]


async def single_option_proposal(
    session: AsyncSession,
    context: MatchingContext,
    intake: IntakeIntake,
    therapist_id: str,
) -> tuple[IntakeMatch, list[Event[Any]]]:
    """A proposal of one therapist (a batch placement), explained like any other option."""
    roster = await context.roster(session)
    table = await context.effectiveness(session)
    now = datetime.now(UTC)
    config = context.config_for(intake.site_id)
    engine_intake = intake_of(intake)
    therapist = roster.therapists[roster.index[therapist_id]]
    breakdown = score(engine_intake, therapist, table, config, now)
    checks = constraint_checks(engine_intake, therapist, config)
    violated = [c.code for c in checks if not c.held]
    head = "Meets every hard constraint." if not violated else f"Misses {', '.join(violated)}."
    match = IntakeMatch(
        id=str(uuid.uuid4()),
        intake_id=intake.id,
        site_id=intake.site_id,
        client=intake.client,
        fit="matched" if not violated else "closest",
        options=[
            option_json(
                1,
                breakdown,
                checks,
                violated,
                f"Batch placement. {head} Score {breakdown.total:.2f}.",
            )
        ],
        summary="Placed by the waiting-list assignment (maximum total match score).",
        eligible=1,
        considered=roster.size,
        created_at=now,
    )
    session.add(match)
    return match, [_proposed_event(match)]


# --- Shared decision --------------------------------------------------------------------------


def _conflict(title: str, detail: str, field_name: str, rule: str) -> Problem:
    return Problem(409, title, detail, errors=[{"field": field_name, "rule": rule}])


async def reserve_place(session: AsyncSession, therapist_id: str, now: datetime) -> None:
    """One more client on the therapist's caseload, only if a place is left (else 409)."""
    t = IntakeTherapist
    reserved = await session.execute(
        update(t)
        .where(
            t.id == therapist_id,  # type: ignore[arg-type]
            t.caseload < t.capacity,  # type: ignore[arg-type]
            t.active == True,  # type: ignore[arg-type]  # noqa: E712
        )
        .values(caseload=t.caseload + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if reserved.rowcount != 1:  # type: ignore[attr-defined]
        raise _conflict(
            "No place left",
            f"Therapist {therapist_id!r} has no place left (or is inactive); "
            "choose another option.",
            "therapist_id",
            "capacity",
        )


async def free_place(session: AsyncSession, therapist_id: str, now: datetime) -> None:
    t = IntakeTherapist
    await session.execute(
        update(t)
        .where(t.id == therapist_id, t.caseload > 0)  # type: ignore[arg-type]
        .values(caseload=t.caseload - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def _claim(session: AsyncSession, match_id: str, values: dict[str, Any]) -> None:
    m = IntakeMatch
    claimed = await session.execute(
        update(m)
        .where(m.id == match_id, m.status == "proposed")  # type: ignore[arg-type]
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise _conflict(
            "Match already decided",
            f"Match {match_id!r} was already confirmed or declined.",
            "match_id",
            "already_decided",
        )


async def confirm(
    session: AsyncSession, settings: Settings, match: IntakeMatch, therapist_id: str
) -> tuple[IntakeEpisode, list[Event[Any]]]:
    """The client's choice: a new episode (or, on rematch, the episode transferred) with the
    chosen therapist, whose place is reserved in this transaction."""
    if therapist_id not in {o["therapist_id"] for o in match.options}:
        raise Problem(
            422,
            "Not an option",
            f"Therapist {therapist_id!r} is not an option of match {match.id!r}.",
            errors=[{"field": "therapist_id", "rule": "not_an_option"}],
        )
    now = datetime.now(UTC)
    await _claim(
        session,
        match.id,
        {"status": "confirmed", "chosen_therapist_id": therapist_id, "decided_at": now},
    )
    intake = await session.get(IntakeIntake, match.intake_id)
    assert intake is not None
    if match.rematch_of_episode is not None:
        return await _transfer(session, match, intake, therapist_id, now)
    i = IntakeIntake
    taken = await session.execute(
        update(i)
        .where(i.id == intake.id, i.status == "waiting")  # type: ignore[arg-type]
        .values(status="matched")
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise _conflict(
            "Intake already matched",
            f"Intake {intake.id!r} already has a confirmed match.",
            "intake_id",
            "already_matched",
        )
    await reserve_place(session, therapist_id, now)
    episode_id = str(uuid.uuid4())
    reference = await unseal_reference(
        session, settings, intake.client, intake.client_reference_sealed, intake.id
    )
    members = [EpisodeMember(respondent=intake.client, role="client")] + [
        EpisodeMember.model_validate(m) for m in intake.members
    ]
    domains = [d["code"] for d in intake.request["domains"]]
    severity = intake_of(intake).severity
    episode = IntakeEpisode(
        id=episode_id,
        site_id=intake.site_id,
        therapist_id=therapist_id,
        client=intake.client,
        client_reference_sealed=await seal_reference(
            session, settings, intake.client, reference, episode_id
        ),
        domains=domains,
        severity=severity,
        members=[m.model_dump() for m in members],
        created_at=now,
        match_id=match.id,
        intake_id=intake.id,
        past_therapists=[],
    )
    session.add(episode)
    event = Event(
        MATCH_CONFIRMED,
        MatchConfirmed(
            match_id=match.id,
            episode_id=episode_id,
            site_id=intake.site_id,
            therapist_id=therapist_id,
            client=intake.client,
            domains=domains,
            severity=severity,
            members=members,
            confirmed_at=now,
        ),
        source=SOURCE,
    )
    return episode, [event]


async def _transfer(
    session: AsyncSession,
    match: IntakeMatch,
    intake: IntakeIntake,
    therapist_id: str,
    now: datetime,
) -> tuple[IntakeEpisode, list[Event[Any]]]:
    """Rematch confirmed: the episode keeps its id and history and moves to the new therapist;
    the old therapist's place is freed, the new one's reserved."""
    episode = await session.get(IntakeEpisode, match.rematch_of_episode, with_for_update=True)
    if episode is None or episode.phase in CLOSED_PHASES:
        raise _conflict(
            "Episode not open",
            f"Episode {match.rematch_of_episode!r} is no longer open.",
            "episode_id",
            "not_open",
        )
    old = episode.therapist_id
    # Lock both therapists in id order, so two opposite transfers cannot deadlock.
    await session.execute(
        select(IntakeTherapist)
        .where(col(IntakeTherapist.id).in_(sorted({old, therapist_id})))
        .order_by(col(IntakeTherapist.id))
        .with_for_update()
    )
    await reserve_place(session, therapist_id, now)
    if episode.match_id is not None:
        await free_place(session, old, now)
    episode.therapist_id = therapist_id
    episode.past_therapists = [*(episode.past_therapists or []), old]
    episode.match_id = match.id
    session.add(episode)
    members = [EpisodeMember.model_validate(m) for m in episode.members]
    events: list[Event[Any]] = [
        Event(
            EPISODE_TRANSFERRED,
            EpisodeTransferred(
                episode_id=episode.id,
                site_id=episode.site_id,
                from_therapist_id=old,
                to_therapist_id=therapist_id,
                transferred_at=now,
            ),
            source=SOURCE,
        ),
        # Consumers that learn episodes from match.confirmed (feedback) follow the new
        # therapist; the episode id is unchanged, so its history stays attached.
        Event(
            MATCH_CONFIRMED,
            MatchConfirmed(
                match_id=match.id,
                episode_id=episode.id,
                site_id=episode.site_id,
                therapist_id=therapist_id,
                client=episode.client,
                domains=list(episode.domains),
                severity=episode.severity,
                members=members,
                confirmed_at=now,
            ),
            source=SOURCE,
        ),
    ]
    return episode, events


async def decline(
    session: AsyncSession, match: IntakeMatch, reason_code: str, therapist_ids: Sequence[str]
) -> list[str]:
    """Record the decline; the intake's next proposals exclude the declined therapists."""
    declined = list(dict.fromkeys(therapist_ids)) or [o["therapist_id"] for o in match.options]
    await _claim(
        session,
        match.id,
        {"status": "declined", "reason_code": reason_code, "decided_at": datetime.now(UTC)},
    )
    intake = await session.get(IntakeIntake, match.intake_id, with_for_update=True)
    assert intake is not None
    intake.declined_therapists = sorted(set(intake.declined_therapists) | set(declined))
    session.add(intake)
    return declined


async def rematch(
    session: AsyncSession, context: MatchingContext, episode: IntakeEpisode
) -> tuple[IntakeMatch, list[Event[Any]]]:
    """A new proposal for an open episode, excluding its current and past therapists."""
    intake = await session.get(IntakeIntake, episode.intake_id) if episode.intake_id else None
    if intake is None:
        raise Problem(
            422,
            "No intake to rematch from",
            f"Episode {episode.id!r} was opened directly, without an intake; submit an intake.",
            errors=[{"field": "episode_id", "rule": "no_intake"}],
        )
    excluded = [*(episode.past_therapists or []), episode.therapist_id]
    return await propose_for(
        session, context, intake, excluded=excluded, rematch_of_episode=episode.id
    )


# --- Event subscribers ------------------------------------------------------------------------


async def on_effectiveness_updated(
    delivery: Delivery[TherapistEffectivenessUpdated],
) -> Sequence[Event[Any]]:
    """Keep the latest estimate per therapist × site × domain (the engine's effectiveness)."""
    data = delivery.event.data
    session = delivery.session
    row = await session.get(IntakeEffectiveness, (data.therapist_id, data.site_id, data.domain))
    if row is not None and row.updated_at.replace(tzinfo=UTC) > data.updated_at.astimezone(UTC):
        return []  # an older estimate arriving late
    estimates = {
        name: value.model_dump() if value is not None else None
        for name, value in (
            ("reliable_improvement", data.reliable_improvement_rate),
            ("deterioration", data.deterioration_rate),
            ("mean_alliance", data.mean_alliance),
        )
    }
    if row is None:
        row = IntakeEffectiveness(
            therapist_id=data.therapist_id,
            site_id=data.site_id,
            domain=data.domain,
            n=data.n,
            classification=data.classification,
            estimates=estimates,
            updated_at=data.updated_at,
        )
    row.n = data.n
    row.classification = data.classification
    row.estimates = estimates
    row.updated_at = data.updated_at
    session.add(row)
    return []


def opens_a_rematch(event: Event[AllianceAlert]) -> bool:
    """The one alert intake acts on: ``rematch_suggested`` opened (the others, most of the
    stream, are acknowledged without a transaction)."""
    return event.data.kind == "rematch_suggested" and event.data.status == "opened"


def alliance_alert_subscriber(context: MatchingContext) -> Any:
    async def on_alliance_alert(delivery: Delivery[AllianceAlert]) -> Sequence[Event[Any]]:
        """``rematch_suggested`` opened: propose new therapists for the episode (the
        coordinator and client decide; nothing is confirmed automatically)."""
        data = delivery.event.data
        if not opens_a_rematch(delivery.event):
            return []
        session = delivery.session
        episode = await session.get(IntakeEpisode, data.episode_id)
        if episode is None or episode.phase in CLOSED_PHASES or episode.intake_id is None:
            return []
        m = IntakeMatch
        pending = await session.execute(
            select(func.count()).where(
                m.rematch_of_episode == episode.id,  # type: ignore[arg-type]
                m.status == "proposed",  # type: ignore[arg-type]
            )
        )
        if pending.scalar_one():
            return []
        try:
            _, events = await rematch(session, context, episode)
        except NobodyToOffer:
            return []  # nobody else to offer: the alert itself still reaches the clinicians
        return events

    return on_alliance_alert
