"""Feedback on the real stack: a risk response puts ``risk.flagged`` on Kafka before its
``feedback.recorded``, and the FHIR and JSON paths put identical events on Kafka."""

from __future__ import annotations

import json

import httpx

import services
from shared.auth import mint_token
from shared.contracts import FEEDBACK_RECORDED, RISK_FLAGGED
from shared.host import Host
from shared.settings import Settings
from tests.integration.test_delivery_guarantees import read_topic
from tests.support.waiting import eventually
from tests.unit.feedback.test_feedback_api import PHQ9, fhir_phq9

RESPONSES = 10


async def test_risk_flag_is_on_kafka_before_the_score_and_fhir_equals_json(
    real_settings: Settings,
) -> None:
    host = Host(real_settings, services.definitions(["intake", "feedback"]))
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:

            def auth(role: str) -> dict[str, str]:
                return {
                    "Authorization": "Bearer " + mint_token(real_settings, "th-1", role, ["site-a"])
                }

            opened = await http.post(
                "/intake/episodes",
                headers=auth("intake_coordinator"),
                json={"site_id": "site-a", "therapist_id": "th-1", "client_reference": "c-1"},
            )
            episode_id = opened.json()["episode_id"]

            async def known() -> bool:
                got = await http.get(
                    f"/feedback/episodes/{episode_id}/responses", headers=auth("therapist")
                )
                return got.status_code == 200

            await eventually(known)
            for session_number in range(1, RESPONSES + 1):
                if session_number % 2:
                    answered = await http.post(
                        "/feedback/responses",
                        headers=auth("therapist"),
                        json={
                            "episode_id": episode_id,
                            "session_number": session_number,
                            "respondent_role": "client",
                            "instrument": "phq-9",
                            "items": PHQ9,
                        },
                    )
                else:
                    answered = await http.post(
                        "/feedback/fhir/QuestionnaireResponse",
                        headers={**auth("therapist"), "content-type": "application/fhir+json"},
                        content=json.dumps(fhir_phq9(episode_id, session_number)),
                    )
                assert answered.status_code == 201, answered.text
    finally:
        await host.stop()

    risks = await read_topic(real_settings, real_settings.topic(RISK_FLAGGED.topic_name), RESPONSES)
    scores = await read_topic(
        real_settings, real_settings.topic(FEEDBACK_RECORDED.topic_name), RESPONSES
    )
    # At-least-once: a record may appear twice (same ce_id); none may be missing.
    assert len({r["ce_id"] for r in risks}) == len({s["ce_id"] for s in scores}) == RESPONSES
    risk_time: dict[str, int] = {}
    for r in risks:
        response_id = json.loads(r["value"])["response_id"]
        risk_time[response_id] = min(risk_time.get(response_id, 2**63), int(r["timestamp"]))
    for score in scores:
        data = json.loads(score["value"])
        assert risk_time[data["response_id"]] <= int(score["timestamp"])
    ignore = {
        "response_id",
        "session_number",
        "answered_at",
        "first_total",
        "change_from_first",
        "reliable_change",
        "clinically_significant_change",
        "late",
    }
    shapes = {
        json.dumps(
            {k: v for k, v in json.loads(s["value"]).items() if k not in ignore}, sort_keys=True
        )
        for s in scores
    }
    assert len(shapes) == 1, "JSON and FHIR submissions must publish identical events"
