"""Privacy of streams and logs: canary names, email addresses, phone numbers and comment text
go in through intake (client and partner references, a partner added mid-episode), notify (staff
and client contacts) and feedback (comments, the client's goals in their own words, rated over
six sessions; a consent withdrawn); the flows run across the four services as separate
processes (intake →
match → episode → responses with a risk item → alerts → webhook, email and SMS; a session →
an invitation email). Then every topic of the deployment (DLQs included, listed from the
broker), every log line and every metric label is read: no canary anywhere. Client pseudonyms
are keyed HMACs, and neither that key nor any other secret appears in a stream or a log."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr

from shared.crypto import pseudonymise
from shared.settings import DEV_SECRET, Settings
from tests.support.notify import Endpoints, SmtpSink
from tests.support.system import SystemUnderTest, read_all, running_system, topics_of
from tests.support.waiting import eventually

SITE = "site-a"
CLIENT_NAME = "Zebulon Quixcanary"
PARTNER_NAME = "Philippa Vexcanary"
STAFF_EMAIL = "dr.quixcanary@clinic.example"
LEAD_EMAIL = "lead.quixcanary@clinic.example"
CLIENT_EMAIL = "zebulon.quixcanary@mail.example"
STAFF_PHONE = "+447700900461"
LEAD_PHONE = "+447700900462"
COMMENT = "Quixcanary comment: my brother Zebulon threatened me on Tuesday"
GOAL = "Quillcanary goal: phone my sister Ermintrude every Sunday"
GOAL_REVISED = "Quillcanary goal: visit Ermintrude once a month"
LATE_PARTNER = "Barnaby Midcanary"

# Searched for case-insensitively in every record, log line and metric.
CANARIES = (
    "quixcanary",
    "vexcanary",
    "zebulon",
    "philippa",
    "7700900461",
    "7700900462",
    "threatened me on tuesday",
    "quillcanary",
    "ermintrude",
    "midcanary",
    "barnaby",
)


def _secrets() -> dict[str, str]:
    return {
        "RAPPORT_JWT_SECRET": "jwt-" + secrets.token_hex(24),
        "RAPPORT_PSEUDONYM_KEY": "pseudonym-" + secrets.token_hex(24),
        "RAPPORT_ENCRYPTION_KEY": "encryption-" + secrets.token_hex(24),
    }


async def test_no_canary_in_any_topic_log_or_metric_and_pseudonyms_are_keyed(
    real_settings: Settings, tmp_path: Path
) -> None:
    keys = _secrets()
    settings = real_settings.model_copy(
        update={
            "jwt_secret": SecretStr(keys["RAPPORT_JWT_SECRET"]),
            "pseudonym_key": SecretStr(keys["RAPPORT_PSEUDONYM_KEY"]),
            "encryption_key": SecretStr(keys["RAPPORT_ENCRYPTION_KEY"]),
        }
    )
    smtp = SmtpSink()
    smtp.start()
    sms = Endpoints()
    await sms.start()
    env = {
        **keys,
        "RAPPORT_NOTIFY_SMTP_HOST": "127.0.0.1",
        "RAPPORT_NOTIFY_SMTP_PORT": str(smtp.port),
        "RAPPORT_NOTIFY_SMTP_TLS": "none",
        "RAPPORT_NOTIFY_SMS_PROVIDER_URL": sms.sms_url,
        "RAPPORT_NOTIFY_PUBLIC_BASE_URL": "https://rapport.clinic.example",
    }
    try:
        async with running_system(settings, tmp_path, env=env) as system:
            client = await _run_the_flows(system, smtp, sms)
            await _sweep(system, client, keys)
    finally:
        await sms.stop()
        smtp.stop()


async def _run_the_flows(system: SystemUnderTest, smtp: SmtpSink, sms: Endpoints) -> str:
    admin = system.auth("site_admin", SITE)
    coordinator = system.auth("intake_coordinator", SITE)
    policy = json.loads(
        (Path(__file__).parents[2] / "services/notify/policy_defaults.json").read_text()
    )
    await system.register_webhook(SITE, policy)
    for role, staff_id, email, phone in (
        ("therapist", "th-priv", STAFF_EMAIL, STAFF_PHONE),
        ("clinical_lead", "lead-1", LEAD_EMAIL, LEAD_PHONE),
    ):
        await system.call(
            "PUT",
            "notify",
            f"/notify/contacts/{SITE}/{role}/{staff_id}",
            json={"email": email, "phone": phone},
            headers=admin,
        )
    await system.call(
        "POST",
        "intake",
        "/intake/therapists",
        json={
            "id": "th-priv",
            "sites": [SITE],
            "languages": ["en"],
            "capacity": 5,
            "domains": ["depression"],
        },
        headers=admin,
    )
    intake = await system.call(
        "POST",
        "intake",
        "/intake/intakes",
        json={
            "site_id": SITE,
            "client_reference": CLIENT_NAME,
            "domains": [{"code": "depression"}],
            "languages": ["en"],
        },
        headers=coordinator,
    )
    match = intake.json()["match"]
    confirmed = await system.call(
        "POST",
        "intake",
        f"/intake/matches/{match['match_id']}/confirm",
        json={"therapist_id": "th-priv"},
        headers=coordinator,
    )
    episode = confirmed.json()["episode_id"]
    couple = await system.call(
        "POST",
        "intake",
        "/intake/episodes",
        json={
            "site_id": SITE,
            "therapist_id": "th-priv",
            "client_reference": f"{CLIENT_NAME} (couple)",
            "members": [{"reference": PARTNER_NAME, "role": "partner"}],
        },
        headers=coordinator,
    )
    therapist = system.auth("therapist", SITE, "th-priv")
    for episode_id in (episode, couple.json()["episode_id"]):
        await _known_to_feedback(system, episode_id, therapist)
    client: str = match["client"]
    await system.call(
        "PUT",
        "notify",
        f"/notify/client-contacts/{SITE}/{client}",
        json={"email": CLIENT_EMAIL, "channel": "email", "consent": True},
        headers=coordinator,
    )
    for instrument, items in (
        ("srs", {"relationship": 5.0, "goals": 5.5, "approach": 6.0, "overall": 5.0}),
        ("phq-9", {**{str(i): 2 for i in range(1, 9)}, "9": 2}),
    ):
        await system.call(
            "POST",
            "feedback",
            "/feedback/responses",
            json={
                "episode_id": episode,
                "session_number": 1,
                "respondent_role": "client",
                "instrument": instrument,
                "items": items,
                "comment": COMMENT,
            },
            headers=therapist,
        )
    await system.call(
        "POST",
        "feedback",
        "/feedback/sessions",
        json={"episode_id": episode, "session_number": 2, "at": datetime.now(UTC).isoformat()},
        headers=therapist,
    )

    # The flows really ran: the canary addresses were used by the channels they belong to.
    async def everything_sent() -> bool:
        return bool(
            smtp.to(STAFF_EMAIL)
            and smtp.to(LEAD_EMAIL)
            and smtp.to(CLIENT_EMAIL)
            and len(sms.sms) >= 2
            and any(r.body["data"].get("kind") == "risk" for r in system.receiver.received)
        )

    await eventually(everything_sent, timeout=90, interval=0.5, what="risk and invitation sent")
    await _goals_people_and_consent(system, episode, therapist, coordinator)
    return client


async def _goals_people_and_consent(
    system: SystemUnderTest, episode: str, therapist: dict[str, str], coordinator: dict[str, str]
) -> None:
    """Issue 19: goals in the client's words (set, revised, rated over six sessions), the
    support of significant others rated, a partner added mid-episode, a consent withdrawn."""
    goals = f"/feedback/episodes/{episode}/goals"
    goal = await system.call("POST", "feedback", goals, json={"text": GOAL}, headers=therapist)
    goal_id = goal.json()["goal_id"]
    await system.call(
        "PATCH", "feedback", f"{goals}/{goal_id}", json={"text": GOAL_REVISED}, headers=therapist
    )
    for session in range(1, 7):
        for instrument, items in (("goals", {goal_id: 2}), ("support", {"support": 3})):
            if instrument == "support" and session > 1:
                continue
            await system.call(
                "POST",
                "feedback",
                "/feedback/responses",
                json={
                    "episode_id": episode,
                    "session_number": session,
                    "respondent_role": "client",
                    "instrument": instrument,
                    "items": items,
                },
                headers=therapist,
            )
    await system.call(
        "POST",
        "intake",
        f"/intake/episodes/{episode}/members",
        json={"reference": LATE_PARTNER, "role": "partner"},
        headers=coordinator,
    )
    await system.call(
        "POST",
        "feedback",
        f"/feedback/episodes/{episode}/consents",
        json={"scope": "significant_others", "granted": False},
        headers=therapist,
    )
    read = await system.http.get(system.url("feedback", goals), headers=therapist)
    assert [g["text"] for g in read.json()] == [GOAL_REVISED]  # the flow really stored it

    async def alerted() -> bool:
        got = await system.http.get(
            system.url("analytics", "/analytics/alerts"),
            params={"site_id": SITE, "status": "open"},
            headers=therapist,
        )
        kinds = {a["kind"] for a in got.json()} if got.status_code == 200 else set()
        return {"goals_not_progressing", "low_support"} <= kinds

    await eventually(alerted, timeout=180, interval=0.5, what="the goal and support alerts")


async def _known_to_feedback(
    system: SystemUnderTest, episode_id: str, auth: dict[str, str]
) -> None:
    async def known() -> bool:
        got = await system.http.get(
            system.url("feedback", f"/feedback/episodes/{episode_id}/responses"), headers=auth
        )
        return got.status_code == 200

    await eventually(known, timeout=60, what="feedback to learn the episode")


async def _sweep(system: SystemUnderTest, client: str, keys: dict[str, str]) -> None:
    topics = await topics_of(system.settings)
    # Let the services finish publishing (alerts, delivery results) before reading the streams.
    pending = (
        "select (select count(*) from intake_outbox where published_at is null)"
        " + (select count(*) from feedback_outbox where published_at is null)"
        " + (select count(*) from analytics_outbox where published_at is null)"
        " + (select count(*) from notify_outbox where published_at is null)"
    )

    async def published() -> bool:
        return await system.scalar(pending) == 0

    await eventually(published, timeout=60, what="every outbox to be published")
    records = await read_all(system.settings, topics)
    places: list[tuple[str, str]] = []
    for record in records:
        text = b" ".join(
            [record.key or b"", record.value, *(k.encode() + b"=" + v for k, v in record.headers)]
        ).decode(errors="replace")
        places.append((f"topic {record.topic}", text))
    for service, log in system.logs().items():
        places.extend((f"{service} log line {n}", line) for n, line in enumerate(log.splitlines()))
    async with httpx.AsyncClient(timeout=10) as http:
        for service in system.processes:
            metrics = (await http.get(system.url(service, "/metrics"))).text
            places.append((f"{service} /metrics", metrics))

    print(
        "PRIVACY "
        + json.dumps(
            {
                "topics": len(topics),
                "dlq_topics": sum(t.endswith(".dlq") for t in topics),
                "records": len(records),
                "log_lines": sum(w.split(" log line ")[0] != w for w, _ in places),
                "metric_pages": len(system.processes),
            }
        )
    )
    found = [
        (where, canary) for where, text in places for canary in CANARIES if canary in text.lower()
    ]
    assert not found, found[:20]
    leaked = [(where, name) for where, text in places for name, key in keys.items() if key in text]
    assert not leaked, leaked[:20]

    # The sweep saw the flows: the topics carry the client's pseudonym, not the reference; and
    # the goal ratings, the partner added and the consent withdrawn went through Kafka.
    for name in ("consent.changed.v1", "episode.members.changed.v1"):
        assert any(r.topic.endswith(name) for r in records), name
    assert any(b'"instrument":"goals"' in r.value.replace(b" ", b"") for r in records)
    assert any(t.endswith(".dlq") for t in topics), topics
    assert sum(client in text for where, text in places if where.startswith("topic")) >= 3
    # ... and that pseudonym is a keyed HMAC of the reference: reproducible with the key, not
    # without it (neither the unkeyed hash nor the development key gives it).
    reference = f"client:{SITE}:{CLIENT_NAME}"
    assert client == pseudonymise(keys["RAPPORT_PSEUDONYM_KEY"], reference)
    assert client[3:] != hashlib.sha256(reference.encode()).hexdigest()[:32]
    assert client != pseudonymise(DEV_SECRET, reference)
    assert re.fullmatch(r"p1_[0-9a-f]{32}", client)
