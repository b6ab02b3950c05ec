"""The matching flow on the real stack: a confirmed match reaches Kafka with its members and
the feedback service learns the episode from it; a rematch transfer follows on the same
episode id."""

from __future__ import annotations

import json

from shared.contracts import EPISODE_TRANSFERRED, INTAKE_SUBMITTED, MATCH_CONFIRMED, MATCH_PROPOSED
from shared.settings import Settings
from tests.integration.test_delivery_guarantees import read_topic
from tests.support.waiting import eventually
from tests.unit.intake.desk import intake_desk, therapist_body


async def test_a_confirmed_match_reaches_kafka_and_feedback_learns_the_episode(
    real_settings: Settings,
) -> None:
    async with intake_desk(real_settings, ("intake", "feedback"), embedded=False) as desk:
        await desk.register(
            therapist_body("th-1", scopes=["adults", "couples"]), therapist_body("th-2")
        )
        submitted = await desk.submit(
            unit="couple",
            domains=[{"code": "depression", "severity": "severe"}],
            members=[{"reference": "partner-1", "role": "partner"}],
        )
        match_id = submitted["match"]["match_id"]
        confirmed = await desk.http.post(
            f"/intake/matches/{match_id}/confirm",
            headers=desk.coordinator,
            json={"therapist_id": "th-1"},
        )
        assert confirmed.status_code == 201, confirmed.text
        episode_id = confirmed.json()["episode_id"]

        async def feedback_knows() -> bool:
            got = await desk.http.get(
                f"/feedback/episodes/{episode_id}/responses",
                headers=desk.auth("clinical_lead"),
            )
            return got.status_code == 200

        await eventually(feedback_knows, what="feedback to learn the episode")
        await desk.register(therapist_body("th-3", scopes=["adults", "couples"]))
        rematch = await desk.http.post(
            f"/intake/episodes/{episode_id}/rematch", headers=desk.coordinator
        )
        assert rematch.status_code == 201
        assert {o["therapist_id"] for o in rematch.json()["options"]} == {"th-3"}
        moved = await desk.http.post(
            f"/intake/matches/{rematch.json()['match_id']}/confirm",
            headers=desk.coordinator,
            json={"therapist_id": "th-3"},
        )
        assert moved.status_code == 201, moved.text

    def data(records: list[dict[str, str]]) -> list[dict[str, object]]:
        return list({r["ce_id"]: json.loads(r["value"]) for r in records}.values())

    topic = real_settings.topic
    submitted_events = data(await read_topic(real_settings, topic(INTAKE_SUBMITTED.topic_name), 1))
    assert [e["client"] for e in submitted_events] == [submitted["client"]]
    proposed = data(await read_topic(real_settings, topic(MATCH_PROPOSED.topic_name), 2))
    assert {e["match_id"] for e in proposed} == {match_id, rematch.json()["match_id"]}
    confirmations = data(await read_topic(real_settings, topic(MATCH_CONFIRMED.topic_name), 2))
    assert [(e["episode_id"], e["therapist_id"]) for e in confirmations] == [
        (episode_id, "th-1"),
        (episode_id, "th-3"),
    ]
    assert [m["role"] for m in confirmations[0]["members"]] == ["client", "partner"]  # type: ignore[index]
    [transfer] = data(await read_topic(real_settings, topic(EPISODE_TRANSFERRED.topic_name), 1))
    assert (transfer["from_therapist_id"], transfer["to_therapist_id"]) == ("th-1", "th-3")
