"""Events analytics applies: each scored response updates the series and the alerts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import select

from services.analytics import domain
from services.analytics.models import AnalyticsAlert, AnalyticsScore
from shared.consumer import Delivery, HandlerRejected
from shared.contracts import (
    ALLIANCE_ALERT,
    ALLIANCE_ASSESSED,
    AllianceAlert,
    AllianceAssessed,
    FeedbackRecorded,
)
from shared.events import Event
from shared.instruments import Instrument

SOURCE = "/rapport/analytics"


def make_feedback_handler(instruments: dict[str, Instrument]) -> Any:
    async def on_feedback_recorded(delivery: Delivery[FeedbackRecorded]) -> Sequence[Event[Any]]:
        data = delivery.event.data
        session = delivery.session
        instrument = instruments.get(data.instrument)
        if instrument is None:
            raise HandlerRejected(f"unknown instrument {data.instrument!r}")
        response = domain.ScoredResponse(
            episode_id=data.episode_id,
            session_number=data.session_number,
            respondent=data.respondent,
            respondent_role=data.respondent_role,
            instrument=data.instrument,
            instrument_kind=instrument.kind,
            total=Decimal(str(data.total)),
            concern=data.in_concern_or_clinical_range,
            risk_items={k: Decimal(str(data.items[k])) for k in data.risk_items if k in data.items},
        )
        now = datetime.now(UTC)
        session.add(
            AnalyticsScore(
                response_id=data.response_id,
                episode_id=data.episode_id,
                site_id=data.site_id,
                therapist_id=data.therapist_id,
                session_number=data.session_number,
                respondent=data.respondent,
                respondent_role=data.respondent_role,
                instrument=data.instrument,
                total=str(response.total),
                concern=response.concern,
                recorded_at=now,
            )
        )
        emitted: list[Event[Any]] = []
        if instrument.kind == "alliance":
            emitted.append(
                Event(
                    ALLIANCE_ASSESSED,
                    AllianceAssessed(
                        response_id=data.response_id,
                        episode_id=data.episode_id,
                        site_id=data.site_id,
                        therapist_id=data.therapist_id,
                        session_number=data.session_number,
                        respondent=data.respondent,
                        respondent_role=data.respondent_role,
                        instrument=data.instrument,
                        score=data.total,
                        baseline=None,
                        concern=response.concern,
                    ),
                    source=SOURCE,
                )
            )
        open_low = (
            await session.exec(
                select(AnalyticsAlert).where(
                    AnalyticsAlert.episode_id == data.episode_id,
                    AnalyticsAlert.kind == "low_alliance",
                    AnalyticsAlert.respondent == data.respondent,
                    AnalyticsAlert.instrument == data.instrument,
                    AnalyticsAlert.status == "open",
                )
            )
        ).first()
        changes = [
            c
            for c in (
                domain.risk_alert(response),
                domain.low_alliance(response, open_low is not None),
            )
            if c
        ]
        for change in changes:
            if change.action == "open":
                alert = AnalyticsAlert(
                    id=str(uuid.uuid4()),
                    episode_id=data.episode_id,
                    site_id=data.site_id,
                    therapist_id=data.therapist_id,
                    kind=change.kind,
                    severity=change.severity,
                    rule=change.rule,
                    respondent=change.respondent,
                    instrument=data.instrument,
                    opened_session=data.session_number,
                    inputs=change.inputs,
                    suggestion_code=change.suggestion_code,
                    opened_at=now,
                )
                if change.kind == "risk":  # fires for every such response; nothing to resolve
                    alert.status = "resolved"
                    alert.resolved_session = data.session_number
                    alert.resolved_at = now
            else:
                assert open_low is not None
                alert = open_low
                alert.status = "resolved"
                alert.resolved_session = data.session_number
                alert.resolved_at = now
            session.add(alert)
            emitted.append(
                Event(
                    ALLIANCE_ALERT,
                    AllianceAlert(
                        alert_id=alert.id,
                        episode_id=alert.episode_id,
                        site_id=alert.site_id,
                        therapist_id=alert.therapist_id,
                        status="opened" if change.action == "open" else "resolved",
                        kind=change.kind,
                        severity=change.severity,
                        rule=change.rule,
                        session_number=data.session_number,
                        respondent=change.respondent,
                        inputs=change.inputs,
                        suggestion_code=change.suggestion_code,
                        at=now,
                    ),
                    source=SOURCE,
                )
            )
        return emitted

    return on_feedback_recorded
