"""Alert rules over scored feedback (DOMAIN.md, Alert rules). Pure: no I/O, no clock.

Scores are ``Decimal`` at the instrument's precision, so thresholds compare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Severity = Literal["urgent", "high", "routine"]
CLIENT_SIDE = frozenset({"client", "partner", "family"})


@dataclass(frozen=True)
class ScoredResponse:
    """One scored questionnaire response, as analytics sees it."""

    episode_id: str
    session_number: int
    respondent: str
    respondent_role: str
    instrument: str
    instrument_kind: Literal["alliance", "outcome", "symptom"]
    total: Decimal
    concern: bool  # the instrument's concern condition (alliance) or clinical range (outcome)
    risk_items: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertChange:
    """Open or resolve one alert, saying which rule and which numbers."""

    action: Literal["open", "resolve"]
    kind: str
    severity: Severity
    rule: str
    respondent: str | None
    inputs: dict[str, float | int | str | bool | None]
    suggestion_code: str


def risk_alert(response: ScoredResponse) -> AlertChange | None:
    """Rule 1 — any risk item above 0 (e.g. PHQ-9 item 9): urgent, for every such response."""
    raised = {item: v for item, v in response.risk_items.items() if v > 0}
    if not raised:
        return None
    return AlertChange(
        action="open",
        kind="risk",
        severity="urgent",
        rule="rule-1-risk-item",
        respondent=response.respondent,
        inputs={
            "instrument": response.instrument,
            **{f"item_{k}": float(v) for k, v in sorted(raised.items())},
        },
        suggestion_code="contact_client_now_and_assess_risk",
    )


def low_alliance(response: ScoredResponse, already_open: bool) -> AlertChange | None:
    """Rule 2 — a client-side alliance score meets the instrument's concern condition.

    At most one open per (episode, respondent, instrument); it resolves when a later score no
    longer meets the condition (Bordin 1979; SRS concern per Duncan et al. 2003).
    """
    if response.instrument_kind != "alliance" or response.respondent_role not in CLIENT_SIDE:
        return None
    inputs: dict[str, float | int | str | bool | None] = {
        "instrument": response.instrument,
        "score": float(response.total),
        "session": response.session_number,
    }
    if response.concern and not already_open:
        return AlertChange(
            "open",
            "low_alliance",
            "routine",
            "rule-2-concern",
            response.respondent,
            inputs,
            "invite_feedback_on_the_relationship_next_session",
        )
    if not response.concern and already_open:
        return AlertChange(
            "resolve",
            "low_alliance",
            "routine",
            "rule-2-concern",
            response.respondent,
            inputs,
            "none",
        )
    return None
