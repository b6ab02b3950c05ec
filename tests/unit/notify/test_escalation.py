"""Escalation by policy for every severity (services/notify/escalation.py): an urgent alert as
the policy's ``risk`` says, any other by the first matching ``escalations`` rule, after its
delay, when nobody followed it up; a non-urgent escalation waits for its recipient's quiet
hours, an urgent one never does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.notify.delivery_rows import planned_rows
from services.notify.domain import ContactPoint, NoticeSpec, QuietHours, plan
from services.notify.escalation import escalates_at, escalation_for, is_due
from services.notify.policy import EscalationRule, RiskPolicy, RoutingPolicy

OPENED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def policy(*rules: EscalationRule, risk: RiskPolicy | None = None) -> RoutingPolicy:
    return RoutingPolicy(escalations=list(rules), risk=risk or RiskPolicy())


RUPTURES_AFTER_A_DAY = EscalationRule(
    kinds=["rupture"], severities=["high"], after_seconds=86_400, to=["supervisor"]
)
ANY_AFTER_TWO_DAYS = EscalationRule(after_seconds=2 * 86_400, to=["clinical_lead"])


# -- which rule, and when -----------------------------------------------------------------------


def test_a_non_urgent_alert_escalates_by_the_first_rule_that_matches_it() -> None:
    chosen = policy(RUPTURES_AFTER_A_DAY, ANY_AFTER_TWO_DAYS)

    rupture = escalation_for(chosen, "rupture", "high")
    routine = escalation_for(chosen, "low_alliance", "routine")

    assert rupture is not None and routine is not None
    assert (rupture.after, rupture.to, rupture.urgent) == (
        timedelta(days=1),
        ("supervisor",),
        False,
    )
    assert (routine.after, routine.to) == (timedelta(days=2), ("clinical_lead",))


def test_an_alert_no_rule_matches_does_not_escalate() -> None:
    assert escalation_for(policy(RUPTURES_AFTER_A_DAY), "rupture", "routine") is None
    assert escalation_for(policy(RUPTURES_AFTER_A_DAY), "low_alliance", "high") is None
    assert escalates_at(policy(), "rupture", "high", OPENED) is None


def test_the_wildcard_never_escalates_a_match_or_a_results_notice() -> None:
    assert escalation_for(policy(ANY_AFTER_TWO_DAYS), "match_proposed", "routine") is None
    assert escalation_for(policy(ANY_AFTER_TWO_DAYS), "feedback_results", "routine") is None


def test_an_urgent_alert_escalates_as_the_risk_section_says_whatever_the_rules() -> None:
    risk = RiskPolicy(escalate_after_seconds=600, escalate_to=["supervisor"], channels=["sms"])

    for kind, severity in (("risk", "urgent"), ("rupture", "urgent"), ("risk", "high")):
        escalation = escalation_for(policy(ANY_AFTER_TWO_DAYS, risk=risk), kind, severity)
        assert escalation is not None
        assert (escalation.after, escalation.to, escalation.channels, escalation.urgent) == (
            timedelta(minutes=10),
            ("supervisor",),
            ("sms",),
            True,
        )


def test_a_rule_cannot_name_urgent_alerts_or_matches() -> None:
    with pytest.raises(ValidationError, match="severities"):
        EscalationRule.model_validate({"severities": ["urgent"], "after_seconds": 60, "to": ["x"]})
    with pytest.raises(ValidationError, match="only alerts escalate"):
        EscalationRule(kinds=["match_proposed"], after_seconds=60, to=["supervisor"])
    with pytest.raises(ValidationError, match="after_seconds"):
        EscalationRule(after_seconds=0, to=["supervisor"])


# -- the delay boundary -------------------------------------------------------------------------


def test_the_escalation_is_due_exactly_when_the_delay_has_passed() -> None:
    at = escalates_at(policy(RUPTURES_AFTER_A_DAY), "rupture", "high", OPENED)

    assert at == OPENED + timedelta(days=1)
    assert not is_due(at, at - TICK, acknowledged=False, escalated=False)
    assert is_due(at, at, acknowledged=False, escalated=False)
    assert is_due(at, at + timedelta(days=3), acknowledged=False, escalated=False)


@pytest.mark.parametrize("step", ["acknowledged", "action_recorded", "resolved", "closed"])
def test_an_alert_followed_up_in_any_way_is_not_escalated(step: str) -> None:
    at = OPENED + timedelta(hours=1)

    assert not is_due(at, at, acknowledged=False, escalated=False, steps=["opened", step])


def test_an_acknowledged_or_already_escalated_notice_is_not_escalated_again() -> None:
    at = OPENED + timedelta(hours=1)

    assert is_due(at, at, acknowledged=False, escalated=False, steps=["opened"])
    assert not is_due(at, at, acknowledged=True, escalated=False)
    assert not is_due(at, at, acknowledged=False, escalated=True)
    assert not is_due(None, at, acknowledged=False, escalated=False)


# -- the quiet-hours boundary -------------------------------------------------------------------

NIGHT = QuietHours.parse("22:00", "07:00", "UTC")
SUPERVISOR = ContactPoint(
    "c-sup", "supervisor", "sup-1", has_email=True, has_phone=True, quiet=NIGHT
)


def escalation_email_due(kind: str, severity: str, now: datetime) -> tuple[datetime, str]:
    chosen = policy(
        EscalationRule(after_seconds=3600, to=["supervisor"], channels=["email"]),
        risk=RiskPolicy(channels=["email"], escalate_to=["supervisor"]),
    )
    escalation = escalation_for(chosen, kind, severity)
    assert escalation is not None
    planned = plan(escalation.intents(), therapist_id="th-1", contacts=[SUPERVISOR], endpoints=[])
    notice = NoticeSpec("alert:a-1", "site-a", kind, severity, "e-1", "alliance.alert", {})
    (row,) = planned_rows(
        notice,
        planned,
        chosen,
        now,
        notice_id="n-1",
        key_base="escalation:n-1",
        delivery_kind="escalation",
    )
    return row["next_attempt_at"], json.loads(row["payload"])["subject"]


def test_a_non_urgent_escalation_waits_for_the_end_of_its_recipients_quiet_hours() -> None:
    morning = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)

    due, subject = escalation_email_due("rupture", "high", morning - TICK)
    assert due == morning
    assert "not been followed up" in subject
    assert escalation_email_due("rupture", "high", morning)[0] == morning
    evening = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
    assert escalation_email_due("rupture", "high", evening - TICK)[0] == evening - TICK
    assert escalation_email_due("rupture", "high", evening)[0] == morning


def test_an_urgent_escalation_goes_through_quiet_hours() -> None:
    night = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)

    due, subject = escalation_email_due("risk", "urgent", night)

    assert due == night
    assert "URGENT" in subject
