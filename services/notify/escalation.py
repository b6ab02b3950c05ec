"""Escalation, as pure rules: an alert nobody followed up (no acknowledgement, no recorded
action, not ended) is told to a second role once its time runs out.

An urgent alert (rule 1: risk, or anything marked urgent) escalates as the policy's ``risk``
section says, on its channels, at once whatever anyone's quiet hours. Any other alert escalates
by the first of the policy's ``escalations`` rules that matches its kind and severity; its
messages wait for the end of their recipient's quiet hours. An alert no rule matches does not
escalate."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.notify.domain import Intent, is_urgent
from services.notify.policy import RoutingPolicy
from shared.alert_life import ENDINGS

# Steps of an alert's life after which nobody needs reminding: somebody saw it or acted on
# it, or it ended.
FOLLOWED_UP: frozenset[str] = frozenset({"acknowledged", "action_recorded"}) | ENDINGS


@dataclass(frozen=True)
class Escalation:
    """Whom to tell, how, and how long after the opening."""

    after: timedelta
    to: tuple[str, ...]
    channels: tuple[str, ...]
    urgent: bool

    def intents(self) -> tuple[Intent, ...]:
        return tuple(
            Intent(role, channel, "immediate", self.urgent)
            for role in self.to
            for channel in self.channels
        )


def escalation_for(policy: RoutingPolicy, kind: str, severity: str) -> Escalation | None:
    """How an alert of this kind and severity escalates under this policy; None: it does not."""
    if is_urgent(kind, severity):
        risk = policy.risk
        return Escalation(
            timedelta(seconds=risk.escalate_after_seconds),
            tuple(risk.escalate_to),
            tuple(risk.channels),
            urgent=True,
        )
    for rule in policy.escalations:
        if rule.matches(kind, severity):
            return Escalation(
                timedelta(seconds=rule.after_seconds),
                tuple(rule.to),
                tuple(rule.channels),
                urgent=False,
            )
    return None


def escalates_at(
    policy: RoutingPolicy, kind: str, severity: str, since: datetime
) -> datetime | None:
    """When an alert that opened (or became deliverable) at ``since`` escalates if nobody
    follows it up; None when it never does."""
    escalation = escalation_for(policy, kind, severity)
    return None if escalation is None else since + escalation.after


def is_due(
    escalate_at: datetime | None,
    now: datetime,
    *,
    acknowledged: bool,
    escalated: bool,
    steps: Collection[str] = (),
) -> bool:
    """Whether the escalation goes now: its time has come (inclusive), nobody acknowledged a
    delivery, no step of the alert's life shows it followed up, and it has not escalated yet."""
    return (
        escalate_at is not None
        and now >= escalate_at
        and not acknowledged
        and not escalated
        and not (FOLLOWED_UP & set(steps))
    )
