"""Erasure on request, on the real stack: after ``POST /intake/erasures`` and one drain, no store
of any service (every PostgreSQL table, Redis keys and values) holds the erased client's
canaries or pseudonym outside the erasure record and register, the client's sealed comment can
no longer be decrypted, a second client is untouched, aggregates are kept, and rebuilding
analytics from the topics brings none of it back."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import services
from rapport.backfill import backfill
from rapport.topics import topic_names
from services.feedback.usecases.responses import client_key
from services.intake.models import CLIENT_KEYS
from services.intake.usecases.references import unseal_reference
from shared.auth import mint_token
from shared.crypto import is_client_sealed, unseal
from shared.db import all_sites, make_engine, make_sessionmaker
from shared.erasure import ClientKeys
from shared.host import Host
from shared.settings import Settings
from tests.support.infra import plain_dsn
from tests.support.notify import SmtpSink
from tests.support.waiting import eventually

SITE = "site-a"
THERAPIST = "th-erasure"
ERASED = {
    "reference": "MRN-CANARY-ERASE-7731",
    "email": "alice.canary7731@example.org",
    "phone": "+4915112347731",
    "comment": "Canary comment 7731: my sister Alice Canarysmith knows",
}
KEPT = {
    "reference": "MRN-KEEPER-4242",
    "email": "bob.keeper4242@example.org",
    "phone": "+4915112344242",
    "comment": "Keeper comment 4242: fine",
}
ERASURE_TABLES = {f"{s}_{t}" for s in services.NAMES for t in ("erasures", "erased")}
# The append-only, hash-chained audit trail keeps who accessed which resource, named by opaque
# ids (episode id, pseudonym) that point at nothing once the data is gone; it never holds
# names, contact details or free text, so the canaries are searched for there too.
AUDIT_TABLES = {f"{s}_audit" for s in services.NAMES}


def auth(settings: Settings, role: str, sub: str = "staff-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, sub, role, [SITE])}"}


async def _client_with_data(
    http: httpx.AsyncClient, settings: Settings, client: dict[str, str]
) -> dict[str, Any]:
    opened = await http.post(
        "/intake/episodes",
        json={
            "site_id": SITE,
            "therapist_id": THERAPIST,
            "client_reference": client["reference"],
            "domains": ["depression"],
            "severity": "moderate",
        },
        headers=auth(settings, "intake_coordinator"),
    )
    assert opened.status_code == 201, opened.text
    episode = opened.json()
    therapist = auth(settings, "therapist", THERAPIST)

    async def feedback_knows_episode() -> bool:
        got = await http.get(
            f"/feedback/episodes/{episode['episode_id']}/responses", headers=therapist
        )
        return got.status_code == 200

    await eventually(feedback_knows_episode, what="feedback to learn the episode")
    phq9 = {"1": 2, "2": 2, "3": 1, "4": 2, "5": 1, "6": 2, "7": 1, "8": 0, "9": 1}
    recorded = await http.post(
        "/feedback/responses",
        json={
            "episode_id": episode["episode_id"],
            "session_number": 1,
            "respondent_role": "client",
            "instrument": "phq-9",
            "items": phq9,
            "comment": client["comment"],
        },
        headers=therapist,
    )
    assert recorded.status_code == 201, recorded.text
    contact = await http.put(
        f"/notify/client-contacts/{SITE}/{episode['client']}",
        json={"email": client["email"], "phone": client["phone"], "consent": True},
        headers=auth(settings, "site_admin"),
    )
    assert contact.status_code in (200, 201), contact.text
    # A session took place: notify invites the client (by email), which counts towards the
    # client's rate limit in Redis under the pseudonym.
    session = await http.post(
        "/feedback/sessions",
        json={
            "episode_id": episode["episode_id"],
            "session_number": 1,
            "at": "2026-01-05T10:00:00Z",
        },
        headers=therapist,
    )
    assert session.status_code == 201, session.text
    return episode


async def _all_rows(owner: asyncpg.Connection) -> dict[str, list[str]]:
    """Every row of every table, as text (the owner sees every site)."""
    tables = await owner.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    found: dict[str, list[str]] = {}
    for t in tables:
        name = t["tablename"]
        rows = await owner.fetch(f'SELECT t::text AS row FROM "{name}" t')
        found[name] = [r["row"] for r in rows]
    return found


async def _redis_text(settings: Settings) -> str:
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url)
    try:
        parts = []
        # Every key of this test's deployment (the services prefix theirs with the topic
        # prefix; other tests' keys may hold the same pseudonyms: same development key).
        async for key in redis.scan_iter(match=f"{settings.topic_prefix}*", count=1000):
            parts.append(key.decode(errors="replace"))
            kind = await redis.type(key)
            values: list[Any] = []
            if kind == b"string":
                values = [await redis.get(key)]
            elif kind == b"hash":
                values = [x for pair in (await redis.hgetall(key)).items() for x in pair]
            elif kind == b"list":
                values = await redis.lrange(key, 0, -1)
            elif kind == b"set":
                values = list(await redis.smembers(key))
            elif kind == b"zset":
                values = await redis.zrange(key, 0, -1)
            parts.extend(v.decode(errors="replace") for v in values if isinstance(v, bytes))
        return "\n".join(parts)
    finally:
        await redis.aclose()


def _hits(rows: dict[str, list[str]], needles: list[str], skip: set[str]) -> list[str]:
    return [
        f"{table}: {needle}"
        for table, texts in rows.items()
        if table not in skip
        for text in texts
        for needle in needles
        if needle in text
    ]


async def test_erasure_removes_the_client_everywhere_keeps_the_other_and_the_aggregates(
    real_settings: Settings,
) -> None:
    smtp = SmtpSink()  # invitations by email: the client's rate counter appears in Redis
    smtp.start()
    settings = real_settings.model_copy(
        update={
            "notify_smtp_host": "127.0.0.1",
            "notify_smtp_port": smtp.port,
            "notify_smtp_tls": "none",
            "notify_smtp_from": "rapport@clinic.test",
        }
    )
    owner = await asyncpg.connect(plain_dsn(settings.migration_database_url_for("")))
    host = Host(settings, services.definitions())
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://rapport") as http:
            hook = await http.post(
                "/notify/webhooks",
                json={"site_id": SITE, "url": "http://127.0.0.1:9/hooks"},
                headers=auth(settings, "site_admin"),
            )
            assert hook.status_code == 201, hook.text
            policy = await http.put(
                f"/notify/policies/{SITE}",
                json={"invitations": {"remind_after_seconds": 3600, "link_ttl_seconds": 7200}},
                headers=auth(settings, "site_admin"),
            )
            assert policy.status_code == 200, policy.text
            erased = await _client_with_data(http, settings, ERASED)
            kept = await _client_with_data(http, settings, KEPT)
            gone_ids = [erased["client"], erased["episode_id"]]

            async def alerts_opened() -> bool:
                count = await owner.fetchval("SELECT count(*) FROM analytics_alerts")
                return int(count) >= 2  # a risk alert for each client

            await eventually(alerts_opened, what="analytics to open both risk alerts")

            async def redis_knows_both() -> bool:
                text = await _redis_text(settings)
                return erased["client"] in text and kept["client"] in text

            await eventually(redis_knows_both, what="notify's Redis keys for both clients")
            closed = await http.post(
                f"/intake/episodes/{erased['episode_id']}/close",
                json={"reason": "completed"},
                headers=auth(settings, "intake_coordinator"),
            )
            assert closed.status_code == 200, closed.text

            async def analytics_counts_the_closed_episode() -> bool:
                count = await owner.fetchval("SELECT count(*) FROM analytics_closed_episodes")
                return int(count) == 1

            await eventually(analytics_counts_the_closed_episode, what="the closed episode")
            alerts_before = await owner.fetchval(
                "SELECT count(*) FROM analytics_alerts WHERE site_id = $1", SITE
            )
            sealed = await owner.fetch(
                "SELECT episode_id, id, comment_sealed FROM feedback_responses"
            )
            comments = {r["episode_id"]: (r["id"], r["comment_sealed"]) for r in sealed}
            assert set(comments) == {erased["episode_id"], kept["episode_id"]}
            references = {
                r["id"]: r["client_reference_sealed"]
                for r in await owner.fetch(
                    "SELECT id, client_reference_sealed FROM intake_episodes"
                )
            }
            addresses = {
                r["respondent"]: (r["id"], r["email_sealed"])
                for r in await owner.fetch(
                    "SELECT id, respondent, email_sealed FROM notify_client_contacts"
                )
            }
            before = await _all_rows(owner)
            assert _hits(before, gone_ids, set()), "the canaries are not where the test looks"

            # Only a site admin or clinical lead of the client's site may ask.
            refused = await http.post(
                "/intake/erasures",
                json={"site_id": SITE, "client_reference": ERASED["reference"]},
                headers=auth(settings, "therapist", THERAPIST),
            )
            assert refused.status_code == 403
            other_site = await http.post(
                "/intake/erasures",
                json={"site_id": SITE, "client_reference": ERASED["reference"]},
                headers={
                    "Authorization": "Bearer "
                    + mint_token(settings, "admin-b", "site_admin", ["site-b"])
                },
            )
            assert other_site.status_code == 403
            unknown = await http.post(
                "/intake/erasures",
                json={"site_id": SITE, "client_reference": "MRN-NOBODY"},
                headers=auth(settings, "site_admin", "admin-7"),
            )
            assert unknown.status_code == 404
            assert unknown.json()["errors"] == [{"field": "client_reference", "rule": "not_found"}]
            asked = await http.post(
                "/intake/erasures",
                json={"site_id": SITE, "client_reference": ERASED["reference"]},
                headers=auth(settings, "site_admin", "admin-7"),
            )
            assert asked.status_code == 202, asked.text
            assert asked.json()["client"] == erased["client"]
            request_id = asked.json()["request_id"]

            async def every_service_completed() -> bool:
                done = 0
                for service in services.NAMES:
                    done += await owner.fetchval(
                        f"SELECT count(*) FROM {service}_erasures "
                        "WHERE request_id = $1 AND outcome = 'completed'",
                        request_id,
                    )
                return done == len(services.NAMES)

            await eventually(every_service_completed, what="every service to complete the erasure")

        after = await _all_rows(owner)
        opaque = [erased["client"], erased["episode_id"]]
        canaries = list(ERASED.values())
        needles = [*opaque, *canaries]
        hits = _hits(after, opaque, ERASURE_TABLES | AUDIT_TABLES)
        hits += _hits(after, canaries, ERASURE_TABLES)
        assert hits == [], hits
        erase_audits = await owner.fetchval(
            "SELECT count(*) FROM intake_audit WHERE action = 'client.erase' AND status = 202"
        )
        assert erase_audits == 1
        redis_text = await _redis_text(settings)
        assert [n for n in needles if n in redis_text] == []
        assert kept["client"] in redis_text
        # The audit record of the erasure remains: who, when, which pseudonym, outcome.
        record = await owner.fetchrow(
            "SELECT requested_by, site_id, client, requested_at, outcome FROM intake_erasures "
            "WHERE request_id = $1",
            request_id,
        )
        assert record is not None
        assert (record["requested_by"], record["site_id"], record["client"]) == (
            "admin-7",
            SITE,
            erased["client"],
        )
        assert record["outcome"] == "completed"
        # The other client is untouched.
        kept_ids = [kept["client"], kept["episode_id"]]
        for needle in kept_ids:
            assert _hits(after, [needle], ERASURE_TABLES), f"{needle} was removed"
        # Crypto-shredding: the erased client's sealed comment cannot be decrypted any more
        # (its data key is gone); the other client's still can.
        runtime = host.runtimes["feedback"]
        with all_sites():
            async with runtime.sessionmaker() as session, session.begin():
                kept_key = await client_key(runtime, session, kept["client"])
                fresh_key = await client_key(runtime, session, erased["client"])
        response_id, token = comments[kept["episode_id"]]
        assert unseal(kept_key, token, associated=response_id) == KEPT["comment"]
        response_id, token = comments[erased["episode_id"]]
        with pytest.raises(Exception):  # noqa: B017 - any failure to decrypt is the point
            unseal(fresh_key, token, associated=response_id)
        intake = host.runtimes["intake"]
        with all_sites():
            async with intake.sessionmaker() as session, session.begin():
                kept_reference = await unseal_reference(
                    session,
                    settings,
                    kept["client"],
                    references[kept["episode_id"]],
                    kept["episode_id"],
                )
                assert kept_reference == KEPT["reference"]
                with pytest.raises(LookupError):
                    await unseal_reference(
                        session,
                        settings,
                        erased["client"],
                        references[erased["episode_id"]],
                        erased["episode_id"],
                    )
        notify = host.runtimes["notify"].dependencies.sealing
        with all_sites():
            async with host.runtimes["notify"].sessionmaker() as session, session.begin():
                for who, expected in ((kept, KEPT["email"]), (erased, None)):
                    owner_id, sealed_email = addresses[who["client"]]
                    assert is_client_sealed(sealed_email)
                    key = await notify.client_keys().existing(session, who["client"])
                    assert notify.unseal_address(sealed_email, owner_id, key) == expected
        # Aggregates are kept: the site's alert count is unchanged (anonymised, not deleted).
        alerts_after = await owner.fetchval(
            "SELECT count(*) FROM analytics_alerts WHERE site_id = $1", SITE
        )
        assert alerts_after == alerts_before
        # ... and the therapist's closed-episode results (input of effectiveness) too.
        assert (
            await owner.fetchval(
                "SELECT count(*) FROM analytics_closed_episodes WHERE therapist_id = $1", THERAPIST
            )
            == 1
        )
    finally:
        await host.stop()
        smtp.stop()

    # Rebuilding analytics from its topics brings none of the erased client back.
    await backfill(settings)
    rebuilt = await _all_rows(owner)
    analytics = {k: v for k, v in rebuilt.items() if k.startswith("analytics_")}
    assert _hits(analytics, [erased["client"], erased["episode_id"]], ERASURE_TABLES) == []
    assert _hits(analytics, [kept["episode_id"]], ERASURE_TABLES)
    await owner.close()


async def test_no_topic_is_compacted_so_erasure_needs_no_tombstones(
    real_settings: Settings,
) -> None:
    """Tombstones matter only on compacted topics keyed by the client; Rapport has none (every
    topic is time-retained and keyed by episode or pseudonym), which this checks on the broker."""
    from rapport.topics import main as topics_main

    env = {
        "RAPPORT_KAFKA_BOOTSTRAP": real_settings.kafka_bootstrap,
        "RAPPORT_TOPIC_PREFIX": real_settings.topic_prefix,
        "RAPPORT_TOPIC_PARTITIONS": "1",
    }
    assert await asyncio.to_thread(topics_main, ["create"], env) == 0
    names = topic_names(real_settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=real_settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    policies: dict[str, str] = {}
    for response in described:
        for resource in response.resources:
            name = resource[3]
            for entry in resource[4]:
                if entry[0] == "cleanup.policy":
                    policies[name] = entry[1]
    assert set(policies) == set(names)
    assert {n for n, p in policies.items() if "compact" in p} == set()


async def test_two_first_uses_of_a_client_key_at_once_share_one_key(
    real_settings: Settings,
) -> None:
    """Two requests for a new client at once (e.g. two intakes): one key, no error."""
    engine = make_engine(real_settings.database_url_for("intake"), pool_size=2)
    sessions = make_sessionmaker(engine)
    keys = ClientKeys(CLIENT_KEYS, bytes(32))
    client = "p1_" + "e" * 32

    async def first_use() -> bytes:
        async with sessions() as session, session.begin():
            key = await keys.key(session, client)
            await asyncio.sleep(0.3)  # both transactions are open at once
            return key

    try:
        first, second = await asyncio.gather(first_use(), first_use())
    finally:
        await engine.dispose()
    assert first == second
