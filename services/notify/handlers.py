"""Events notify applies. Each handler only records what must be sent (notices, deliveries,
invitations) in the consumer's transaction; the dispatcher sends after the commit."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from services.notify import domain, invitations
from services.notify.context import NotifyContext
from services.notify.models import NotifyEpisode, NotifySession
from services.notify.notices import NoticeSpec, _insert, open_notice
from shared.consumer import Delivery
from shared.contracts import (
    AllianceAlert,
    FeedbackRecorded,
    MatchConfirmed,
    MatchProposed,
    RiskFlagged,
    SessionCompleted,
)
from shared.db import dialect_of
from shared.events import Event

Handler = Callable[[Delivery[Any]], Awaitable[Sequence[Event[Any]]]]
RISK_RULE = "rule-1-risk"
RISK_SUGGESTION = "contact_client_now_and_assess_risk"


def alert_notice(event_id: str, alert: AllianceAlert) -> NoticeSpec:
    instrument = alert.inputs.get("instrument")
    if alert.kind == domain.RISK and alert.respondent and isinstance(instrument, str):
        key = domain.risk_notice_key(
            alert.episode_id, alert.session_number, alert.respondent, instrument
        )
    else:
        key = domain.alert_notice_key(alert.alert_id)
    return NoticeSpec(
        key=key,
        site_id=alert.site_id,
        kind=alert.kind,
        severity=alert.severity,
        source_event_id=event_id,
        source_type="alliance.alert",
        data=alert.model_dump(mode="json"),
        episode_id=alert.episode_id,
        therapist_id=alert.therapist_id,
    )


def risk_notice(event_id: str, risk: RiskFlagged) -> NoticeSpec:
    """The same shape as analytics' rule-1 alert, so a front-end reads one format whichever
    event reached notify first."""
    inputs: dict[str, Any] = {"instrument": risk.instrument}
    inputs.update({f"item_{k}": float(v) for k, v in sorted(risk.risk_items.items()) if v > 0})
    inputs["threshold"] = 0  # as analytics' rule 1 states it
    return NoticeSpec(
        key=domain.risk_notice_key(
            risk.episode_id, risk.session_number, risk.respondent, risk.instrument
        ),
        site_id=risk.site_id,
        kind=domain.RISK,
        severity="urgent",
        source_event_id=event_id,
        source_type="risk.flagged",
        data={
            "alert_id": risk.response_id,
            "episode_id": risk.episode_id,
            "site_id": risk.site_id,
            "therapist_id": risk.therapist_id,
            "status": "opened",
            "kind": domain.RISK,
            "severity": "urgent",
            "rule": RISK_RULE,
            "session_number": risk.session_number,
            "respondent": risk.respondent,
            "inputs": inputs,
            "suggestion_code": RISK_SUGGESTION,
            "at": risk.answered_at.isoformat(),
        },
        episode_id=risk.episode_id,
        therapist_id=risk.therapist_id,
    )


def an_opened_alert(event: Event[AllianceAlert]) -> bool:
    return event.data.status == "opened"


def make_handlers(ctx: NotifyContext) -> dict[str, Handler]:
    async def on_alliance_alert(delivery: Delivery[AllianceAlert]) -> Sequence[Event[Any]]:
        """Opened alerts go where the site's policy says (resolutions are not announced)."""
        alert = delivery.event.data
        if not an_opened_alert(delivery.event):
            return []
        routing = await ctx.policies.routing(delivery.session, alert.site_id)
        notice = alert_notice(delivery.event.id, alert)
        await open_notice(ctx, delivery.session, notice, routing, delivery.after_commit)
        return []

    async def on_risk_flagged(delivery: Delivery[RiskFlagged]) -> Sequence[Event[Any]]:
        """Rule 1: the earliest word of a risk response; urgent to therapist and lead."""
        risk = delivery.event.data
        routing = await ctx.policies.routing(delivery.session, risk.site_id)
        notice = risk_notice(delivery.event.id, risk)
        await open_notice(ctx, delivery.session, notice, routing, delivery.after_commit)
        return []

    async def on_match_proposed(delivery: Delivery[MatchProposed]) -> Sequence[Event[Any]]:
        proposed = delivery.event.data
        routing = await ctx.policies.routing(delivery.session, proposed.site_id)
        notice = NoticeSpec(
            key=domain.event_notice_key("match_proposed", delivery.event.id),
            site_id=proposed.site_id,
            kind="match_proposed",
            severity="routine",
            source_event_id=delivery.event.id,
            source_type="match.proposed",
            data={"type": "match.proposed", **proposed.model_dump(mode="json")},
        )
        await open_notice(ctx, delivery.session, notice, routing, delivery.after_commit)
        return []

    async def on_match_confirmed(delivery: Delivery[MatchConfirmed]) -> Sequence[Event[Any]]:
        """Learn the episode's members (for invitations) and tell the intake coordinator."""
        confirmed = delivery.event.data
        session = delivery.session
        routing = await ctx.policies.routing(session, confirmed.site_id)
        members = [m.model_dump() for m in confirmed.members] or [
            {"respondent": confirmed.client, "role": "client"}
        ]
        values = {
            "episode_id": confirmed.episode_id,
            "site_id": confirmed.site_id,
            "therapist_id": confirmed.therapist_id,
            "members": members,
            "confirmed_at": confirmed.confirmed_at,
        }
        insert = sqlite.insert if dialect_of(session) == "sqlite" else postgresql.insert
        table = NotifyEpisode.__table__  # type: ignore[attr-defined]
        statement = insert(table).values(values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["episode_id"],
                set_={k: statement.excluded[k] for k in values if k != "episode_id"},
            )
        )
        episode = await session.get(NotifyEpisode, confirmed.episode_id, populate_existing=True)
        assert episode is not None
        if await invitations.plan_waiting_sessions(ctx, session, episode, routing.policy):
            delivery.after_commit.append(ctx.wake_dispatcher)
        notice = NoticeSpec(
            key=domain.event_notice_key("match_confirmed", delivery.event.id),
            site_id=confirmed.site_id,
            kind="match_confirmed",
            severity="routine",
            source_event_id=delivery.event.id,
            source_type="match.confirmed",
            data={
                "type": "match.confirmed",
                **confirmed.model_dump(mode="json", exclude={"members"}),
            },
            episode_id=confirmed.episode_id,
            therapist_id=confirmed.therapist_id,
        )
        await open_notice(ctx, session, notice, routing, delivery.after_commit)
        return []

    async def on_session_completed(delivery: Delivery[SessionCompleted]) -> Sequence[Event[Any]]:
        """Invite the episode's client-side members to give feedback on the session."""
        completed = delivery.event.data
        session = delivery.session
        routing = await ctx.policies.routing(session, completed.site_id)
        row = {
            "id": str(uuid.uuid4()),
            "episode_id": completed.episode_id,
            "site_id": completed.site_id,
            "session_number": completed.session_number,
            "attended": completed.attended,
            "source_event_id": delivery.event.id,
            "at": completed.at,
        }
        table = NotifySession.__table__  # type: ignore[attr-defined]
        inserted = await session.execute(
            _insert(session)(table)
            .values(row)
            .on_conflict_do_nothing(index_elements=["episode_id", "session_number"])
            .returning(table.c.id)
        )
        if inserted.first() is None:
            return []  # this session was already reported
        episode = await session.get(NotifyEpisode, completed.episode_id)
        if episode is None:
            return []  # planned when match.confirmed arrives
        waiting = await session.get(NotifySession, row["id"])
        assert waiting is not None
        if await invitations.plan_session(ctx, session, episode, waiting, routing.policy):
            delivery.after_commit.append(ctx.wake_dispatcher)
        return []

    async def on_feedback_recorded(delivery: Delivery[FeedbackRecorded]) -> Sequence[Event[Any]]:
        """An answer stops the reminder (and a not-yet-sent invitation) for that session."""
        recorded = delivery.event.data
        if recorded.respondent_role == "therapist":
            return []
        await invitations.mark_answered(
            delivery.session, recorded.episode_id, recorded.session_number, recorded.respondent
        )
        return []

    return {
        "deliveries_from_alert": on_alliance_alert,
        "deliveries_from_risk": on_risk_flagged,
        "match_proposed_to_coordinator": on_match_proposed,
        "episode_from_match": on_match_confirmed,
        "invitations_from_session": on_session_completed,
        "answers_stop_reminders": on_feedback_recorded,
    }
