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
        "org.rapport.session.attended.v1",  # implied by the response (not yet reported)
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
    "path",
    ["/feedback/responses", "/feedback/sessions", "/feedback/responses/r-1/amend", "/feedback/r/t"],
)
async def test_an_empty_body_is_left_to_validation_as_on_every_route(
    desk: FeedbackDesk, path: str
) -> None:
    """The kernel's one media-type rule: an empty body is 422 ``missing``, not 415."""
    answered = await desk.http.post(path, headers=desk.auth("therapist"))
    assert answered.status_code == 422, answered.text
    assert [e["rule"] for e in answered.json()["errors"]] == ["missing"]


async def test_an_empty_fhir_body_is_malformed_json_as_an_operation_outcome(
    desk: FeedbackDesk,
) -> None:
    answered = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse", headers=desk.auth("therapist")
    )
    assert answered.status_code == 400, answered.text
    assert answered.headers["content-type"] == "application/fhir+json"
    [issue] = answered.json()["issue"]
    assert (issue["expression"], issue["details"]["coding"][0]["code"]) == (["(body)"], "json")


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
    assert len(await emitted(desk)) == 2  # feedback.recorded and session.attended, once


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
    # The report is now the session's attended fact too (issue 16).
    assert [t for t, _ in await emitted(desk)] == [
        "org.rapport.session.attended.v1",
        "org.rapport.session.completed.v1",
    ]
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
    assert [t for t, _ in events] == [
        "org.rapport.feedback.recorded.v1",
        "org.rapport.session.attended.v1",
    ]
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


# -- one answer per respondent, instrument and session ----------------------------------------


def srs_body(episode_id: str, session_number: int = 1, **items: float) -> dict[str, Any]:
    return {
        "episode_id": episode_id,
        "session_number": session_number,
        "respondent_role": "client",
        "instrument": "srs",
        "items": {**SRS, **items},
    }


def link_for(desk: FeedbackDesk, episode_id: str, client: str, session_number: int) -> str:
    return mint(
        desk.settings.encryption_key.get_secret_value(),
        episode_id=episode_id,
        session_number=session_number,
        respondent=client,
        role="client",
        instruments=("srs",),
        ttl_seconds=3600,
    )


async def client_of(desk: FeedbackDesk, episode_id: str) -> str:
    from services.feedback.models import FeedbackEpisode

    async with desk.host.runtimes["feedback"].sessionmaker() as session:
        episode = await session.get(FeedbackEpisode, episode_id)
        assert episode is not None
        return episode.client


def assert_names_the_first(refused: Any, first_id: str) -> None:
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["existing_response_id"] == first_id
    assert body["existing_response"] == f"/feedback/responses/{first_id}"
    assert body["errors"][0]["rule"] == "one_answer_per_session"
    assert first_id in body["detail"]


async def test_a_second_answer_for_the_same_session_is_refused_naming_the_first(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    first = await desk.http.post(
        "/feedback/responses", headers=desk.auth("therapist"), json=srs_body(episode_id, 3)
    )
    assert first.status_code == 201, first.text
    first_id = first.json()["response_id"]

    again = await desk.http.post(
        "/feedback/responses", headers=desk.auth("therapist"), json=srs_body(episode_id, 3)
    )
    other = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json=srs_body(episode_id, 3, overall=2.0),
    )

    assert_names_the_first(again, first_id)
    assert_names_the_first(other, first_id)
    assert await response_count(desk) == 1
    assert [t for t, _ in await emitted(desk)] == [
        "org.rapport.feedback.recorded.v1",
        "org.rapport.session.attended.v1",
    ]
    named = await desk.http.get(f"/feedback/responses/{first_id}", headers=desk.auth("therapist"))
    assert named.status_code == 200 and named.json()["response_id"] == first_id
    # Another session, respondent or instrument is another answer.
    partner = {**srs_body(episode_id, 3), "respondent_role": "partner", "respondent_ref": "p"}
    for body in (srs_body(episode_id, 4), partner):
        answered = await desk.http.post(
            "/feedback/responses", headers=desk.auth("therapist"), json=body
        )
        assert answered.status_code == 201, answered.text


async def test_fhir_refuses_a_second_completed_answer_with_an_operation_outcome(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    headers = {**desk.auth("therapist"), "content-type": "application/fhir+json"}
    first = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse",
        headers=headers,
        content=json.dumps(fhir_phq9(episode_id, 2)),
    )
    assert first.status_code == 201, first.text
    first_id = first.json()["response_id"]

    again = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse",
        headers=headers,
        content=json.dumps(fhir_phq9(episode_id, 2)),
    )

    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/fhir+json"
    outcome = again.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "duplicate")
    assert issue["extension"] == [
        {
            "url": "urn:rapport:fhir:existing-response",
            "valueReference": {"reference": f"QuestionnaireResponse/{first_id}"},
        }
    ]
    assert await response_count(desk) == 1
    # risk.flagged, feedback.recorded and session.attended (implied), once
    assert len(await emitted(desk)) == 3


async def test_a_link_for_an_answered_session_is_refused_and_stays_unused(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    first = await desk.http.post(
        "/feedback/responses", headers=desk.auth("therapist"), json=srs_body(episode_id, 4)
    )
    assert first.status_code == 201
    token = link_for(desk, episode_id, await client_of(desk, episode_id), 4)

    refused = await desk.http.post(
        f"/feedback/r/{token}", json={"responses": [{"instrument": "srs", "items": SRS}]}
    )

    assert_names_the_first(refused, first.json()["response_id"])
    assert (await desk.http.get(f"/feedback/r/{token}")).status_code == 200  # not consumed
    assert await response_count(desk) == 1
    assert len(await emitted(desk)) == 2  # feedback.recorded and session.attended (implied)


async def test_an_amendment_replaces_the_answer_and_says_which_it_replaced(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    first = await desk.http.post(
        "/feedback/responses", headers=desk.auth("therapist"), json=srs_body(episode_id, 2)
    )
    first_id = first.json()["response_id"]

    amended = await desk.http.post(
        f"/feedback/responses/{first_id}/amend",
        headers=desk.auth("therapist", sub="th-1"),
        json={"items": {**SRS, "overall": 5.0}},
    )

    assert amended.status_code == 201, amended.text
    body = amended.json()
    assert body["amends"] == first_id
    assert body["total"] == 32.6
    assert (body["session_number"], body["instrument"]) == (2, "srs")
    recorded = [d for t, d in await emitted(desk) if t.endswith("feedback.recorded.v1")]
    assert [d.get("amends") for d in recorded] == [None, first_id]
    assert "amends" not in recorded[0]  # a first answer's event reads as it always did
    listed = await desk.http.get(
        f"/feedback/episodes/{episode_id}/responses", headers=desk.auth("therapist")
    )
    assert [r["response_id"] for r in listed.json()] == [body["response_id"]]
    history = await desk.http.get(
        f"/feedback/episodes/{episode_id}/responses?include_replaced=true",
        headers=desk.auth("therapist"),
    )
    assert {r["response_id"]: r["replaced_by"] for r in history.json()} == {
        first_id: body["response_id"],
        body["response_id"]: None,
    }
    async with desk.host.runtimes["feedback"].sessionmaker() as session:
        row = await session.get(FeedbackResponse, body["response_id"])
    assert row is not None and row.amended_by == "th-1"
    # The replaced answer can no longer be amended: the 409 names the one that stands.
    twice = await desk.http.post(
        f"/feedback/responses/{first_id}/amend",
        headers=desk.auth("therapist"),
        json={"items": SRS},
    )
    assert_names_the_first(twice, body["response_id"])
    # The amendment is one answer too: a plain second answer is still refused.
    plain = await desk.http.post(
        "/feedback/responses", headers=desk.auth("therapist"), json=srs_body(episode_id, 2)
    )
    assert_names_the_first(plain, body["response_id"])


async def test_an_amendment_is_only_for_staff_who_may_record_for_the_episode(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode(therapist="th-1")
    first = await desk.http.post(
        "/feedback/responses", headers=desk.auth("therapist"), json=srs_body(episode_id)
    )
    first_id = first.json()["response_id"]
    amend = f"/feedback/responses/{first_id}/amend"
    other = await desk.http.post(
        amend, headers=desk.auth("therapist", sub="th-2"), json={"items": SRS}
    )
    site_b = await desk.http.post(
        amend, headers=desk.auth("clinical_lead", sites=("site-b",)), json={"items": SRS}
    )
    assert (other.status_code, site_b.status_code) == (404, 404)
    bad = await desk.http.post(
        amend, headers=desk.auth("therapist"), json={"items": {**SRS, "overall": 11}}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "items.overall"
    assert await response_count(desk) == 1


async def test_a_fhir_amended_response_replaces_the_answer_it_amends(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    headers = {**desk.auth("therapist"), "content-type": "application/fhir+json"}
    first = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse",
        headers=headers,
        content=json.dumps(fhir_phq9(episode_id, 1)),
    )
    resource = fhir_phq9(episode_id, 1, status="amended")
    resource["item"][8]["answer"] = [{"valueCoding": {"code": ANSWER_CODES[0]}}]  # item 9: 0

    amended = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse", headers=headers, content=json.dumps(resource)
    )

    assert amended.status_code == 201, amended.text
    assert amended.json()["amends"] == first.json()["response_id"]
    assert amended.json()["risk_items"] == []
    listed = await desk.http.get(
        f"/feedback/episodes/{episode_id}/responses", headers=desk.auth("therapist")
    )
    assert [r["response_id"] for r in listed.json()] == [amended.json()["response_id"]]
    # No new risk in the amendment: the first answer's flag is not sent again.
    assert [t for t, _ in await emitted(desk)] == [
        "org.rapport.risk.flagged.v1",
        "org.rapport.feedback.recorded.v1",
        "org.rapport.session.attended.v1",  # implied by the first answer, not again
        "org.rapport.feedback.recorded.v1",
    ]


async def test_an_idempotency_key_reused_for_another_request_is_refused(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    headers = {**desk.auth("therapist"), "Idempotency-Key": "key-1"}
    first = await desk.http.post(
        "/feedback/responses", headers=headers, json=srs_body(episode_id, 1)
    )
    assert first.status_code == 201

    other_body = await desk.http.post(
        "/feedback/responses", headers=headers, json=srs_body(episode_id, 2)
    )
    other_items = await desk.http.post(
        "/feedback/responses", headers=headers, json=srs_body(episode_id, 1, overall=1.0)
    )
    same = await desk.http.post(
        "/feedback/responses",
        headers=headers,
        json={**srs_body(episode_id, 1), "items": {k: v for k, v in reversed(SRS.items())}},
    )

    for refused in (other_body, other_items):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"] == [
            {"field": "Idempotency-Key", "rule": "same_key_same_request"}
        ]
    assert same.status_code == 200 and same.json() == first.json()
    assert await response_count(desk) == 1
    assert len(await emitted(desk)) == 2  # feedback.recorded and session.attended, once
