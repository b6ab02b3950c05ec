"""Chaos: feedback responses submitted over HTTP to the four services as separate processes on
the real Kafka, PostgreSQL and Redis, while a random service is SIGKILLed and restarted every
few seconds and Kafka is restarted once. Once the load stops and the system drains, every
accepted response is stored once and scored once, every alert its data implies is opened once,
every notification the routing implies reached the webhook receiver once, and every risk
arrived.

``make test`` runs a slim load (``RAPPORT_CHAOS_RESPONSES``, default 500, spread over
``RAPPORT_CHAOS_SECONDS``, default 50); ``make chaos`` the full one (5,000 over 4 minutes).
The counts are printed as one JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

from services.analytics.domain import RISK
from shared.contracts import RISK_FLAGGED
from shared.settings import Settings
from tests.support import chaos
from tests.support.infra import Infra
from tests.support.system import SERVICES, SystemUnderTest, read_all, running_system, topics_of
from tests.support.waiting import eventually

RESPONSES = int(os.environ.get("RAPPORT_CHAOS_RESPONSES", "500"))
SECONDS = float(os.environ.get("RAPPORT_CHAOS_SECONDS", "50"))  # how long the load lasts
SEED = int(os.environ.get("RAPPORT_CHAOS_SEED", "20261126"))


async def test_nothing_lost_nothing_doubled_under_kills_and_a_kafka_restart(
    infra: Infra, real_settings: Settings, tmp_path: Path
) -> None:
    started = time.monotonic()
    plans = chaos.plan_load(RESPONSES, SEED)
    async with running_system(real_settings, tmp_path) as system:
        for site in chaos.SITES:
            await system.register_webhook(site, chaos.POLICY)
        await chaos.open_episodes(system, plans)

        accepted_so_far = 0
        agent = chaos.Chaos(
            system,
            infra.restart_kafka,
            kafka_due=lambda: accepted_so_far >= RESPONSES // 3,
            seed=SEED,
        )
        chaos_task = asyncio.create_task(agent.run())
        load_started = time.monotonic()
        load = asyncio.create_task(
            chaos.submit(system, plans, workers=24, per_second=RESPONSES / SECONDS)
        )
        while not load.done():
            await asyncio.sleep(0.5)
            accepted_so_far = await system.scalar("select count(*) from feedback_responses")
            if chaos_task.done():
                chaos_task.result()  # a restart that failed fails the test now
        accepted = load.result()
        load_seconds = chaos.elapsed(load_started)
        agent.stopping.set()
        await chaos_task

        counts = await _drain_and_check(system, accepted)
        counts.update(
            responses_submitted=sum(len(p.answers) for p in plans),
            episodes=len(plans),
            kills=dict(agent.kills),
            kafka_restarts=agent.kafka_restarts,
            http_retries=system.retries,
            load_seconds=load_seconds,
            total_seconds=chaos.elapsed(started),
        )
        print("CHAOS " + json.dumps(counts, sort_keys=True))
        assert set(agent.kills) == set(SERVICES)
        assert infra.restart_kafka is None or agent.kafka_restarts == 1


async def _drain_and_check(
    system: SystemUnderTest, accepted: list[chaos.Accepted]
) -> dict[str, object]:
    ids = [a.body["response_id"] for a in accepted]
    assert len(set(ids)) == len(ids), "a retried submission was accepted as a new response"
    opened = chaos.expected_alerts(accepted)
    risks = [a for a in accepted if a.body["risk_items"]]
    therapist_of = {a.plan.episode_id: a.plan.therapist for a in accepted}
    notifications = chaos.expected_notifications(opened, risks, therapist_of)

    async def drained() -> bool:
        stored = await system.scalar("select count(*) from feedback_responses")
        scored = await system.scalar("select count(*) from analytics_scores")
        alerts = await system.scalar("select count(*) from analytics_alerts")
        received, _ = chaos.received_notifications(system)
        return (
            stored >= len(ids)
            and scored >= len(ids)
            and alerts >= len(opened)
            and sum(received.values()) >= sum(notifications.values())
        )

    try:
        await eventually(drained, timeout=600, interval=1, what="the system to drain")
        drained_in_time = True
        await asyncio.sleep(5)  # anything extra (a duplicate) would arrive now
    except AssertionError:
        drained_in_time = False  # print what arrived, then fail

    # Stored once: by what the response is about, not by its id (a second copy gets a new id).
    stored = Counter(
        tuple(r)
        for r in await system.rows(
            "select episode_id, session_number, instrument, respondent from feedback_responses"
        )
    )
    submitted = {
        (a.plan.episode_id, a.answer.session_number, a.answer.instrument, a.body["respondent"])
        for a in accepted
    }
    scored = Counter(r[0] for r in await system.rows("select response_id from analytics_scores"))
    alert_rows = await system.rows(
        "select episode_id, kind, respondent, instrument, opened_session from analytics_alerts"
    )
    alerts_opened = Counter(tuple(r) for r in alert_rows)
    alerts_expected = Counter(chaos.alert_key(c) for c in opened)
    received, resent = chaos.received_notifications(system)
    topics = await topics_of(system.settings)
    risk_topic = system.settings.topic(RISK_FLAGGED.topic_name)
    risk_records = await read_all(system.settings, [risk_topic])
    risk_arrived = {r.data()["response_id"] for r in risk_records}
    dead = await read_all(system.settings, [t for t in topics if t.endswith(".dlq")])
    undelivered = await system.scalar(
        "select count(*) from notify_deliveries where status <> 'delivered'"
    )

    counts: dict[str, object] = {
        "responses_accepted": len(ids),
        "stored": sum(stored.values()),
        "stored_twice": sum(1 for n in stored.values() if n > 1),
        "scored": sum(scored.values()),
        "scored_twice": sum(1 for n in scored.values() if n > 1),
        "alerts_expected": len(opened),
        "alerts_opened": sum(alerts_opened.values()),
        "alerts_missing": sum((alerts_expected - alerts_opened).values()),
        "alerts_unexpected": sum((alerts_opened - alerts_expected).values()),
        "alert_kinds": dict(Counter(c.kind for c in opened)),
        "risk_responses": len(risks),
        "risk_flagged_arrived": len(risk_arrived & {a.body["response_id"] for a in risks}),
        "notifications_expected": sum(notifications.values()),
        "notifications_delivered": sum(received.values()),
        "notifications_lost": sum((notifications - received).values()),
        "notifications_duplicated": sum((received - notifications).values()),
        "webhook_resends_same_id": resent,
        "deliveries_not_delivered": undelivered,
        "dead_letters": len(dead),
    }
    print("CHAOS-DETAIL " + json.dumps(counts, sort_keys=True))
    assert drained_in_time, "the system did not drain within 600 s"
    assert set(stored) == submitted and counts["stored_twice"] == 0
    assert set(scored) == set(ids) and counts["scored_twice"] == 0
    assert alerts_opened == alerts_expected
    assert risk_arrived >= {a.body["response_id"] for a in risks}
    assert any(c.kind == RISK for c in opened) and any(c.kind == "rupture" for c in opened)
    assert received == notifications
    assert undelivered == 0
    assert not dead, [(d.topic, d.header("dlq_error")) for d in dead[:5]]
    return counts
