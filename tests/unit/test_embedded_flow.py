"""The embedded default (in-process broker, SQLite, in-memory Redis) runs the whole flow."""

from __future__ import annotations

from shared.settings import Settings
from tests.support.flow import run_flow

EXPECTED_EMITTED = [
    ("intake", "org.rapport.match.confirmed.v1"),
    # The episode opens (referred → matched), then the first answer makes it active.
    *[("intake", "org.rapport.episode.phase_changed.v1")] * 2,
    # Each session's first answer implies that the client attended it.
    ("feedback", "org.rapport.feedback.recorded.v1"),
    ("feedback", "org.rapport.session.attended.v1"),
    ("feedback", "org.rapport.feedback.recorded.v1"),
    ("feedback", "org.rapport.session.attended.v1"),
    ("feedback", "org.rapport.risk.flagged.v1"),
    ("feedback", "org.rapport.feedback.recorded.v1"),
    ("analytics", "org.rapport.alliance.assessed.v1"),
    ("analytics", "org.rapport.alliance.assessed.v1"),
    *[("analytics", "org.rapport.alliance.alert.v1")] * 5,
    *[("notify", "org.rapport.notification.delivered.v1")] * 5,
]
# Session 2's SRS (29.8 after 38.0): low alliance, early-alliance risk (session ≤ 2), a rupture
# (a drop of 8.2 ≥ RC 5) and a drop-out risk score of 4 (early low 2 + open rupture 2 > 3);
# session 2's PHQ-9 item 9 = 1: risk.
ALERT_KINDS = ["dropout_risk", "early_alliance_risk", "low_alliance", "risk", "rupture"]


async def test_embedded_flow_opens_alerts_and_delivers_signed_webhooks(
    embedded_settings: Settings,
) -> None:
    result = await run_flow(embedded_settings, embedded=True)
    assert result.emitted == EXPECTED_EMITTED
    assert result.alert_kinds == ALERT_KINDS
    assert result.all_verified
