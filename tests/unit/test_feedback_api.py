"""Feedback capture over HTTP (embedded stack): JSON, FHIR and one-time links record the same
thing; bad input gets a 4xx problem naming the item and the rule, and nothing is half-stored."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from services.feedback.models import FeedbackResponse, FeedbackSession
from shared.settings import Settings
from shared.tokens import mint
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.outbox import outbox_rows

SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}
PHQ9 = {"1": 1, "2": 2, "3": 3, "4": 3, "5": 0, "6": 2, "7": 3, "8": 3, "9": 1}
PHQ9_LOINC = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]
ANSWER_CODES = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings) as opened:
        yield opened


async def emitted(desk: FeedbackDesk) -> list[tuple[str, dict[str, Any]]]:
    return [(row.ce_type, row.value) for row in await outbox_rows(desk.host, "feedback")]


async def response_count(desk: FeedbackDesk) -> int:
    async with desk.host.runtimes["feedback"].sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(FeedbackResponse)) or 0)


def fhir_phq9(episode_id: str, session_number: int = 1, **overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://loinc.org/q/44249-1",
        "extension": [
            {"url": "urn:rapport:fhir:episode-id", "valueString": episode_id},
            {"url": "urn:rapport:fhir:session-number", "valueInteger": session_number},
            {"url": "urn:rapport:fhir:respondent-role", "valueCode": "client"},
        ],
        "item": [
            {
                "linkId": code,
                "answer": [
                    {
                        "valueCoding": {
                            "system": "http://loinc.org",
                            "code": ANSWER_CODES[PHQ9[str(i + 1)]],
                        }
                    }
                ],
            }
            for i, code in enumerate(PHQ9_LOINC)
        ],
    }
    resource.update(overrides)
    return resource


async def test_json_response_is_scored_and_risk_is_published_before_the_score(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    recorded = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": 1,
            "respondent_role": "client",
            "instrument": "phq-9",
            "items": PHQ9,
        },
    )
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    assert body["total"] == 18.0
    assert body["band"] == "moderately_severe"
    assert body["risk_items"] == ["9"]
    assert [t for t, _ in await emitted(desk)] == [
        "org.rapport.risk.flagged.v1",
        "org.rapport.feedback.recorded.v1",
    ]


async def test_fhir_and_json_paths_produce_identical_events(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    via_json = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": 1,
            "respondent_role": "client",
            "instrument": "phq-9",
            "items": PHQ9,
        },
    )
    via_fhir = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse",
        headers={**desk.auth("therapist"), "content-type": "application/fhir+json"},
        content=json.dumps(fhir_phq9(episode_id, 2)),
    )
    assert via_json.status_code == via_fhir.status_code == 201, via_fhir.text
    events = await emitted(desk)
    recorded = [data for kind, data in events if kind.endswith("feedback.recorded.v1")]
    ignore = {
        "response_id",
        "session_number",
        "answered_at",
        "first_total",
        "change_from_first",
        "reliable_change",
        "clinically_significant_change",
    }
    stripped = [{k: v for k, v in d.items() if k not in ignore} for d in recorded]
    assert stripped[0] == stripped[1]
    assert recorded[1]["change_from_first"] == 0.0
    assert recorded[1]["reliable_change"] == "no_reliable_change"


async def test_every_instrument_is_served_as_a_fhir_questionnaire_without_licensed_wording(
    desk: FeedbackDesk,
) -> None:
    bundle = (
        await desk.http.get("/feedback/fhir/Questionnaire", headers=desk.auth("therapist"))
    ).json()
    by_id = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    assert set(by_id) >= {"srs", "ors", "wai-sr", "wai-sr-t", "phq-9", "gad-7"}
    assert all("text" not in item for item in by_id["srs"]["item"])
    assert all("text" not in item for item in by_id["wai-sr"]["item"])
    assert all(item.get("text") for item in by_id["phq-9"]["item"])
    assert by_id["phq-9"]["item"][8]["code"][0]["code"] == "44260-8"


@pytest.mark.parametrize(
    ("items", "field", "rule"),
    [
        ({**SRS, "overall": 10.1}, "items.overall", "out_of_range"),
        ({**SRS, "overall": 9.25}, "items.overall", "off_step"),
        ({k: v for k, v in SRS.items() if k != "goals"}, "items.goals", "missing"),
        ({**SRS, "extra": 5}, "items.extra", "unknown_item"),
    ],
)
async def test_bad_answers_get_a_problem_naming_the_item_and_rule_and_store_nothing(
    desk: FeedbackDesk, items: dict[str, float], field: str, rule: str
) -> None:
    episode_id = await desk.open_episode()
    answered = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": 1,
            "respondent_role": "client",
            "instrument": "srs",
            "items": items,
        },
    )
    assert answered.status_code == 422
    assert answered.headers["content-type"] == "application/problem+json"
    assert {"field": field, "rule": rule} in [
        {"field": e["field"], "rule": e["rule"]} for e in answered.json()["errors"]
    ]
    assert await response_count(desk) == 0
    assert await emitted(desk) == []


async def test_a_role_the_instrument_does_not_allow_is_refused(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    answered = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": 1,
            "respondent_role": "therapist",
            "instrument": "srs",
            "items": SRS,
        },
    )
    assert answered.status_code == 422
    assert answered.json()["errors"][0] == {
        "field": "respondent_role",
        "rule": "role_not_allowed",
        "message": "srs may be answered by client, partner, family, not therapist",
    }


async def test_wrong_content_type_gets_415(desk: FeedbackDesk) -> None:
    answered = await desk.http.post(
        "/feedback/responses",
        headers={**desk.auth("therapist"), "content-type": "text/plain"},
        content=b"hello",
    )
    assert answered.status_code == 415
    assert answered.json()["errors"] == [
        {
            "field": "content-type",
            "rule": "media_type",
            "message": "text/plain is not application/json",
            "valid": ["application/json"],
        }
    ]


@pytest.mark.parametrize(
    ("resource", "field", "rule"),
    [
        ({"resourceType": "Patient"}, "resourceType", "not_questionnaire_response"),
        ("QUESTIONNAIRE", "questionnaire", "unknown_questionnaire"),
        ("NO_EPISODE", "extension[urn:rapport:fhir:episode-id]", "required"),
        ("BAD_CODE", "items.1.answer", "unknown_answer_code"),
    ],
)
async def test_a_bad_fhir_resource_is_refused_with_the_field_and_rule(
    desk: FeedbackDesk, resource: Any, field: str, rule: str
) -> None:
    episode_id = await desk.open_episode()
    if resource == "QUESTIONNAIRE":
        resource = fhir_phq9(episode_id, questionnaire="Questionnaire/unknown")
    elif resource == "NO_EPISODE":
        resource = fhir_phq9(episode_id, extension=[])
    elif resource == "BAD_CODE":
        resource = fhir_phq9(episode_id)
        resource["item"][0]["answer"] = [{"valueCoding": {"code": "LA0000-0"}}]
    answered = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse",
        headers={**desk.auth("therapist"), "content-type": "application/fhir+json"},
        content=json.dumps(resource),
    )
    assert answered.status_code == 422, answered.text
    assert answered.headers["content-type"] == "application/fhir+json"
    outcome = answered.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["expression"], i["details"]["coding"][0]["code"]) for i in outcome["issue"]] == [
        ([field], rule)
    ]
    assert await response_count(desk) == 0


async def test_idempotency_key_returns_the_original_result_and_publishes_nothing_new(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    request = {
        "episode_id": episode_id,
        "session_number": 1,
        "respondent_role": "client",
        "instrument": "srs",
        "items": SRS,
    }
    headers = {**desk.auth("therapist"), "Idempotency-Key": "abc-123"}
    first = await desk.http.post("/feedback/responses", headers=headers, json=request)
    again = await desk.http.post("/feedback/responses", headers=headers, json=request)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert await response_count(desk) == 1
    assert len(await emitted(desk)) == 1


async def test_a_late_response_for_an_earlier_session_is_accepted_and_marked_late(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    for session_number in (3, 2):
        answered = await desk.http.post(
            "/feedback/responses",
            headers=desk.auth("therapist"),
            json={
                "episode_id": episode_id,
                "session_number": session_number,
                "respondent_role": "client",
                "instrument": "srs",
                "items": SRS,
            },
        )
        assert answered.status_code == 201
    assert answered.json()["late"] is True


async def test_a_response_for_the_latest_session_is_not_marked_late(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    for session_number in (1, 2):
        answered = await desk.http.post(
            "/feedback/responses",
            headers=desk.auth("therapist"),
            json={
                "episode_id": episode_id,
                "session_number": session_number,
                "respondent_role": "client",
                "instrument": "srs",
                "items": SRS,
            },
        )
        assert answered.status_code == 201
        assert answered.json()["late"] is False


async def test_a_therapist_cannot_record_for_another_therapists_client(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode(therapist="th-1")
    answered = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist", sub="th-2"),
        json={
            "episode_id": episode_id,
            "session_number": 1,
            "respondent_role": "client",
            "instrument": "srs",
            "items": SRS,
        },
    )
    assert answered.status_code == 404
    other_site = await desk.http.get(
        f"/feedback/episodes/{episode_id}/responses",
        headers=desk.auth("clinical_lead", sites=("site-b",)),
    )
    assert other_site.status_code == 404


async def test_sessions_emit_session_completed_once(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    body = {"episode_id": episode_id, "session_number": 1, "at": "2026-11-20T10:00:00Z"}
    first = await desk.http.post("/feedback/sessions", headers=desk.auth("therapist"), json=body)
    again = await desk.http.post("/feedback/sessions", headers=desk.auth("therapist"), json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["session_id"] == again.json()["session_id"]
    assert [t for t, _ in await emitted(desk)] == ["org.rapport.session.completed.v1"]
    async with desk.host.runtimes["feedback"].sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(FeedbackSession)) == 1


async def test_a_one_time_link_records_once_and_then_returns_the_original(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    runtime = desk.host.runtimes["feedback"]
    key = desk.settings.encryption_key.get_secret_value()
    async with runtime.sessionmaker() as session:
        from services.feedback.models import FeedbackEpisode

        episode = await session.get(FeedbackEpisode, episode_id)
        assert episode is not None
    token = mint(
        key,
        episode_id=episode_id,
        session_number=4,
        respondent=episode.client,
        role="client",
        instruments=("srs", "ors"),
        ttl_seconds=3600,
    )
    form = await desk.http.get(f"/feedback/r/{token}")
    assert form.status_code == 200
    assert [i["id"] for i in form.json()["instruments"]] == ["srs", "ors"]
    answer = {"responses": [{"instrument": "srs", "items": SRS}], "comment": "Jane felt unheard"}
    first = await desk.http.post(f"/feedback/r/{token}", json=answer)
    again = await desk.http.post(f"/feedback/r/{token}", json=answer)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert (await desk.http.get(f"/feedback/r/{token}")).status_code == 410
    assert await response_count(desk) == 1
    events = await emitted(desk)
    assert len(events) == 1
    assert "Jane" not in json.dumps(events)
    async with runtime.sessionmaker() as session:
        row = (await session.scalars(select(FeedbackResponse))).one()
    assert row.comment_sealed and "Jane" not in row.comment_sealed


@pytest.mark.parametrize("case", ["forged", "expired", "malformed", "not_in_link"])
async def test_bad_links_are_refused_with_the_rule(desk: FeedbackDesk, case: str) -> None:
    episode_id = await desk.open_episode()
    key = desk.settings.encryption_key.get_secret_value()
    token = mint(
        key,
        episode_id=episode_id,
        session_number=1,
        respondent="p1_" + "0" * 32,
        role="client",
        instruments=("srs",),
        ttl_seconds=60,
    )
    expected = {"forged": 403, "expired": 410, "malformed": 403, "not_in_link": 422}[case]
    if case == "forged":
        token = mint(
            "x" * 40,
            episode_id=episode_id,
            session_number=1,
            respondent="p1_" + "0" * 32,
            role="client",
            instruments=("srs",),
            ttl_seconds=60,
        )
    elif case == "expired":
        token = mint(
            key,
            episode_id=episode_id,
            session_number=1,
            respondent="p1_" + "0" * 32,
            role="client",
            instruments=("srs",),
            ttl_seconds=60,
            now=time.time() - 120,
        )
    elif case == "malformed":
        token = "not-a-token"
    instrument = "ors" if case == "not_in_link" else "srs"
    answered = await desk.http.post(
        f"/feedback/r/{token}", json={"responses": [{"instrument": instrument, "items": SRS}]}
    )
    assert answered.status_code == expected, answered.text
    rule = "not_in_link" if case == "not_in_link" else case
    assert answered.json()["errors"][0]["rule"] == rule
    assert await response_count(desk) == 0


async def test_a_site_adds_its_own_instrument_without_code(
    embedded_settings: Settings, tmp_path: Any
) -> None:
    folder = tmp_path / "site-instruments"
    folder.mkdir()
    (folder / "sleep-3.json").write_text(
        json.dumps(
            {
                "id": "sleep-3",
                "version": 1,
                "title": "Three sleep questions (site-defined)",
                "kind": "symptom",
                "respondents": ["client"],
                "items": ["a", "b", "c"],
                "item_min": 0,
                "item_max": 4,
                "step": "1",
                "total_min": 0,
                "total_max": 12,
                "clinical": {"direction": "higher_is_worse", "cutoff": 6},
                "reliable_change": 3,
            }
        )
    )
    settings = embedded_settings.model_copy(update={"instruments_dir": str(folder)})
    async with feedback_desk(settings) as desk:
        listed = await desk.http.get("/feedback/instruments", headers=desk.auth("therapist"))
        assert "sleep-3" in [i["id"] for i in listed.json()]
        episode_id = await desk.open_episode()
        answered = await desk.http.post(
            "/feedback/responses",
            headers=desk.auth("therapist"),
            json={
                "episode_id": episode_id,
                "session_number": 1,
                "respondent_role": "client",
                "instrument": "sleep-3",
                "items": {"a": 2, "b": 3, "c": 1},
            },
        )
        assert answered.status_code == 201, answered.text
        assert answered.json()["total"] == 6.0
        assert answered.json()["in_concern_or_clinical_range"] is True
