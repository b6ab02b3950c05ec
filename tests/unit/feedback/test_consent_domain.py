"""Consent (issue 19), pure: the latest recording for a scope holds; a withdrawal of feedback
invitations refuses every link of the client's episodes, a withdrawal of contact with
significant others only their partners' and family members' links; a risk item needs the
confidentiality notice shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.feedback.domain import (
    ConsentRecord,
    consents_now,
    link_refusal,
    needs_notice,
)
from shared.instruments import deployment_instruments

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_latest_recording_for_each_scope_holds_whatever_the_order_given() -> None:
    records = [
        ConsentRecord("feedback_invitations", False, T0 + timedelta(minutes=2)),
        ConsentRecord("feedback_invitations", True, T0),
        ConsentRecord("aggregates", True, T0 + timedelta(minutes=1)),
    ]
    assert consents_now(records) == {"feedback_invitations": False, "aggregates": True}
    assert consents_now([]) == {}


@pytest.mark.parametrize(
    ("role", "consents", "refused"),
    [
        ("client", {}, False),
        ("client", {"feedback_invitations": True}, False),
        ("client", {"feedback_invitations": False}, True),
        ("partner", {"feedback_invitations": False}, True),
        ("client", {"significant_others": False}, False),
        ("partner", {"significant_others": False}, True),
        ("family", {"significant_others": False}, True),
        ("family", {"significant_others": True, "aggregates": False}, False),
    ],
)
def test_which_links_a_withdrawal_refuses(
    role: str, consents: dict[str, bool], refused: bool
) -> None:
    assert (link_refusal(role, consents) == "consent_withdrawn") is refused


def test_only_instruments_with_a_risk_item_need_the_notice_shown() -> None:
    instruments = deployment_instruments(None)
    assert needs_notice([instruments["phq-9"]])
    assert needs_notice([instruments["srs"], instruments["core-10"]])
    assert not needs_notice([instruments["srs"], instruments["ors"], instruments["support"]])
