"""The embedded default (in-process broker, SQLite, in-memory Redis) runs the whole flow."""

from __future__ import annotations

from shared.settings import Settings
from tests.support.flow import run_flow

EXPECTED_EMITTED = [
    ("intake", "org.rapport.match.confirmed.v1"),
    ("feedback", "org.rapport.feedback.recorded.v1"),
    ("feedback", "org.rapport.feedback.recorded.v1"),
    ("feedback", "org.rapport.risk.flagged.v1"),
    ("feedback", "org.rapport.feedback.recorded.v1"),
    ("analytics", "org.rapport.alliance.assessed.v1"),
    ("analytics", "org.rapport.alliance.assessed.v1"),
    ("analytics", "org.rapport.alliance.alert.v1"),
    ("analytics", "org.rapport.alliance.alert.v1"),
    ("notify", "org.rapport.notification.delivered.v1"),
    ("notify", "org.rapport.notification.delivered.v1"),
]


async def test_embedded_flow_opens_alerts_and_delivers_signed_webhooks(
    embedded_settings: Settings,
) -> None:
    result = await run_flow(embedded_settings, embedded=True)
    assert result.emitted == EXPECTED_EMITTED
    assert result.alert_kinds == ["low_alliance", "risk"]
    assert result.all_verified
