"""The same flow on the real Kafka, PostgreSQL and Redis produces the same events."""

from __future__ import annotations

from shared.settings import Settings
from tests.support.flow import run_flow
from tests.unit.test_embedded_flow import ALERT_KINDS, EXPECTED_EMITTED


async def test_real_stack_flow_emits_the_same_events_as_embedded(
    real_settings: Settings, embedded_settings: Settings
) -> None:
    real = await run_flow(real_settings, embedded=False)
    embedded = await run_flow(embedded_settings, embedded=True)
    assert real.emitted == EXPECTED_EMITTED
    assert real.emitted == embedded.emitted
    assert real.alert_kinds == embedded.alert_kinds == ALERT_KINDS
    assert real.all_verified
    # Same payload shape on both stacks (ids differ, everything else is the same).
    strip = {"alert_id", "episode_id", "at"}
    shape = [
        sorted((k, v) for k, v in w["data"].items() if k not in strip and k != "respondent")
        for w in sorted(real.webhooks, key=lambda w: w["data"]["kind"])
    ]
    shape_embedded = [
        sorted((k, v) for k, v in w["data"].items() if k not in strip and k != "respondent")
        for w in sorted(embedded.webhooks, key=lambda w: w["data"]["kind"])
    ]
    assert shape == shape_embedded
