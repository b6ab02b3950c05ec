"""Intake, proposal and shared decision over HTTP (embedded stack): options come explained;
when nothing fits, the closest options and what excluded the rest; a confirmed match opens an
episode and reserves a place; a decline keeps those therapists out of the next proposal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from services.intake.models import IntakeEffectiveness, IntakeIntake
from shared.contracts import (
    ALLIANCE_ALERT,
    THERAPIST_EFFECTIVENESS_UPDATED,
    AllianceAlert,
    EffectivenessEstimate,
    TherapistEffectivenessUpdated,
)
from shared.events import Event, encode
from shared.settings import Settings
from tests.support.waiting import eventually
from tests.unit.intake.desk import IntakeDesk, intake_body, intake_desk, therapist_body


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[IntakeDesk]:
    async with intake_desk(embedded_settings) as opened:
        yield opened


async def confirm(desk: IntakeDesk, match_id: str, therapist_id: str) -> dict[str, object]:
    confirmed = await desk.http.post(
        f"/intake/matches/{match_id}/confirm",
        headers=desk.coordinator,
        json={"therapist_id": therapist_id},
    )
    assert confirmed.status_code == 201, confirmed.text
    episode: dict[str, object] = confirmed.json()
    return episode


async def test_an_intake_gets_the_top_options_each_explained(desk: IntakeDesk) -> None:
    await desk.register(*(therapist_body(f"th-{k}", years_experience=k) for k in range(5)))
    proposal = (await desk.submit())["match"]
    assert proposal["status"] == "matched" and proposal["decision"] == "proposed"
    assert [o["rank"] for o in proposal["options"]] == [1, 2, 3]
    first = proposal["options"][0]
    assert first["explanation"].startswith("Meets every hard constraint.")
    assert all(c["held"] for c in first["constraints"])
    assert {"effectiveness", "specialty", "wait", "caseload"} <= {p["code"] for p in first["parts"]}
    assert round(sum(p["points"] for p in first["parts"]), 3) == first["score"]
    fetched = await desk.http.get(
        f"/intake/matches/{proposal['match_id']}", headers=desk.coordinator
    )
    assert fetched.json() == proposal


async def test_the_intake_and_proposal_are_published_with_the_pseudonym_only(
    desk: IntakeDesk,
) -> None:
    await desk.register(therapist_body("th-1"))
    submitted = await desk.submit("secret-ref-77")
    [intake_event] = await desk.emitted_of("intake.submitted")
    [proposed] = await desk.emitted_of("match.proposed")
    assert intake_event["client"] == submitted["client"] and intake_event["client"].startswith(
        "p1_"
    )
    assert proposed["match_id"] == submitted["match"]["match_id"]
    assert [o["therapist_id"] for o in proposed["options"]] == ["th-1"]
    assert "secret-ref-77" not in str(await desk.emitted())


async def test_when_nothing_fits_the_closest_options_come_with_what_excluded_the_rest(
    desk: IntakeDesk,
) -> None:
    await desk.register(
        therapist_body("th-fr", languages=["fr"]), therapist_body("th-de", languages=["de"])
    )
    proposal = (await desk.submit(languages=["en"]))["match"]
    assert proposal["status"] == "closest"
    assert {o["therapist_id"] for o in proposal["options"]} == {"th-fr", "th-de"}
    assert all(o["violated"] == ["language"] for o in proposal["options"])
    language = next(e for e in proposal["exclusions"] if e["constraint"] == "language")
    assert language == {"constraint": "language", "excluded": 2, "only_reason": 2}
    assert "language excluded 2" in proposal["summary"]


async def test_an_intake_with_an_unknown_code_is_refused_naming_the_field(desk: IntakeDesk) -> None:
    refused = await desk.http.post(
        "/intake/intakes",
        headers=desk.coordinator,
        json={
            "site_id": "site-a",
            "client_reference": "c-1",
            "domains": [{"code": "astrology"}],
            "languages": ["en"],
            "preferences": {"modality": {"codes": ["reiki"], "strength": "required"}},
        },
    )
    assert refused.status_code == 422
    errors = {(e["field"], e["rule"]): e for e in refused.json()["errors"]}
    assert {
        ("domains.0.code", "unknown_code"),
        ("preferences.modality.codes.0", "unknown_code"),
    } <= set(errors)
    domain = errors[("domains.0.code", "unknown_code")]
    assert "depression" in domain["valid"] and "astrology" not in domain["valid"]
    assert domain["message"].startswith("unknown problem domain 'astrology'; valid: anxiety, ")


async def test_a_coordinator_of_another_site_cannot_submit_or_see(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1"))
    refused = await desk.http.post(
        "/intake/intakes",
        headers=desk.auth("intake_coordinator", sites=("site-b",)),
        json={
            "site_id": "site-a",
            "client_reference": "c",
            "domains": [{"code": "depression"}],
            "languages": ["en"],
        },
    )
    assert refused.status_code == 403
    match_id = (await desk.submit())["match"]["match_id"]
    hidden = await desk.http.get(
        f"/intake/matches/{match_id}", headers=desk.auth("intake_coordinator", sites=("site-b",))
    )
    assert hidden.status_code == 404


async def test_confirming_opens_the_episode_reserves_a_place_and_publishes_members(
    desk: IntakeDesk,
) -> None:
    await desk.register(therapist_body("th-1", scopes=["adults", "couples"]))
    submitted = await desk.submit(
        unit="couple",
        domains=[{"code": "relationship", "severity": "moderate"}],
        members=[{"reference": "partner-1", "role": "partner"}],
    )
    match_id = submitted["match"]["match_id"]
    episode = await confirm(desk, match_id, "th-1")
    assert episode["therapist_id"] == "th-1" and episode["match_id"] == match_id
    assert await desk.caseload("th-1") == 1
    [confirmed] = await desk.emitted_of("match.confirmed")
    assert confirmed["episode_id"] == episode["episode_id"]
    assert [m["role"] for m in confirmed["members"]] == ["client", "partner"]
    assert confirmed["client"] == submitted["client"]
    again = await desk.http.post(
        f"/intake/matches/{match_id}/confirm",
        headers=desk.coordinator,
        json={"therapist_id": "th-1"},
    )
    assert again.status_code == 409
    assert again.json()["errors"] == [{"field": "match_id", "rule": "already_decided"}]


async def test_confirming_a_therapist_who_is_not_an_option_is_refused(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1"))
    match_id = (await desk.submit())["match"]["match_id"]
    refused = await desk.http.post(
        f"/intake/matches/{match_id}/confirm",
        headers=desk.coordinator,
        json={"therapist_id": "th-9"},
    )
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"field": "therapist_id", "rule": "not_an_option"}]


async def test_the_last_place_taken_meanwhile_gives_409_and_no_episode(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1", capacity=1))
    first = (await desk.submit("c-1"))["match"]["match_id"]
    second = (await desk.submit("c-2"))["match"]["match_id"]
    await confirm(desk, first, "th-1")
    late = await desk.http.post(
        f"/intake/matches/{second}/confirm", headers=desk.coordinator, json={"therapist_id": "th-1"}
    )
    assert late.status_code == 409
    assert late.json()["errors"] == [{"field": "therapist_id", "rule": "capacity"}]
    assert await desk.caseload("th-1") == 1
    assert len(await desk.emitted_of("match.confirmed")) == 1
    still = await desk.http.get(f"/intake/matches/{second}", headers=desk.coordinator)
    assert still.json()["decision"] == "proposed"


async def test_closing_the_episode_frees_the_place(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1", capacity=1))
    episode = await confirm(desk, (await desk.submit())["match"]["match_id"], "th-1")
    closed = await desk.http.post(
        f"/intake/episodes/{episode['episode_id']}/close",
        headers=desk.coordinator,
        json={"reason": "completed"},
    )
    assert closed.status_code == 200 and closed.json()["phase"] == "closed"
    assert await desk.caseload("th-1") == 0


async def test_a_direct_episode_does_not_touch_the_caseload(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1", caseload=2))
    opened = await desk.http.post(
        "/intake/episodes",
        headers=desk.coordinator,
        json={"site_id": "site-a", "therapist_id": "th-1", "client_reference": "c-9"},
    )
    assert opened.status_code == 201
    await desk.http.post(
        f"/intake/episodes/{opened.json()['episode_id']}/close",
        headers=desk.coordinator,
        json={"reason": "withdrawn"},
    )
    assert await desk.caseload("th-1") == 2


async def test_a_decline_is_published_and_the_next_proposal_excludes_the_declined(
    desk: IntakeDesk,
) -> None:
    await desk.register(*(therapist_body(f"th-{k}") for k in range(5)))
    submitted = await desk.submit()
    first = submitted["match"]
    offered = [o["therapist_id"] for o in first["options"]]
    declined = await desk.http.post(
        f"/intake/matches/{first['match_id']}/decline",
        headers=desk.coordinator,
        json={"reason_code": "client_preference"},
    )
    assert declined.status_code == 200 and declined.json()["decision"] == "declined"
    [event] = await desk.emitted_of("match.declined")
    assert sorted(event["declined_therapist_ids"]) == sorted(offered)
    assert event["reason_code"] == "client_preference"
    again = await desk.http.post(
        f"/intake/intakes/{submitted['intake_id']}/propose", headers=desk.coordinator
    )
    assert again.status_code == 201
    second = again.json()
    assert not {o["therapist_id"] for o in second["options"]} & set(offered)
    assert len(second["options"]) == 2
    excluded = next(e for e in second["exclusions"] if e["constraint"] == "not_declined")
    assert excluded["excluded"] == 3


async def test_after_the_only_fitting_therapist_is_declined_the_closest_come_with_reasons(
    desk: IntakeDesk,
) -> None:
    await desk.register(
        therapist_body("th-fits"),
        therapist_body("th-fr", languages=["fr"]),
        therapist_body("th-full", capacity=0),
    )
    submitted = await desk.submit()
    first = submitted["match"]
    assert first["status"] == "matched"
    assert [o["therapist_id"] for o in first["options"]] == ["th-fits"]
    declined = await desk.http.post(
        f"/intake/matches/{first['match_id']}/decline",
        headers=desk.coordinator,
        json={"reason_code": "client_preference"},
    )
    assert declined.status_code == 200, declined.text
    again = await desk.http.post(
        f"/intake/intakes/{submitted['intake_id']}/propose", headers=desk.coordinator
    )
    assert again.status_code == 201, again.text
    second = again.json()
    assert second["status"] == "closest"
    assert [o["therapist_id"] for o in second["options"]] == ["th-full", "th-fr", "th-fits"]
    assert [o["violated"] for o in second["options"]] == [
        ["capacity"],
        ["language"],
        ["not_declined"],
    ]
    for option in second["options"]:
        missed = [c for c in option["constraints"] if not c["held"]]
        assert [c["code"] for c in missed] == option["violated"]
        assert all(c["detail"] for c in missed)
        assert option["explanation"].startswith("Misses 1 hard constraint(s): ")
    assert "Declined by the client" in second["options"][-1]["explanation"]


async def test_a_declined_therapist_can_still_be_chosen_when_offered_again(
    desk: IntakeDesk,
) -> None:
    await desk.register(therapist_body("th-1"))
    submitted = await desk.submit()
    match_id = submitted["match"]["match_id"]
    await desk.http.post(
        f"/intake/matches/{match_id}/decline",
        headers=desk.coordinator,
        json={"reason_code": "client_preference"},
    )
    again = await desk.http.post(
        f"/intake/intakes/{submitted['intake_id']}/propose", headers=desk.coordinator
    )
    assert again.status_code == 201, again.text
    [option] = again.json()["options"]
    assert option["therapist_id"] == "th-1" and option["violated"] == ["not_declined"]
    episode = await confirm(desk, again.json()["match_id"], "th-1")
    assert episode["therapist_id"] == "th-1"


async def test_with_no_therapist_at_all_the_intake_is_refused_with_409_and_nothing_stored(
    desk: IntakeDesk,
) -> None:
    refused = await desk.http.post(
        "/intake/intakes", headers=desk.coordinator, json=intake_body("c-1")
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["title"] == "No therapist can be offered"
    assert "No therapists are registered." in problem["detail"]
    assert problem["errors"] == [
        {
            "field": "site_id",
            "rule": "no_therapist_to_offer",
            "message": "No therapists are registered.",
        }
    ]
    assert await desk.emitted() == []
    async with desk.host.runtimes["intake"].sessionmaker() as session:
        assert (await session.execute(select(IntakeIntake))).first() is None


async def test_a_rematch_with_nobody_else_registered_is_a_409_naming_the_episode(
    desk: IntakeDesk,
) -> None:
    await desk.register(therapist_body("th-0"))
    episode = await confirm(desk, (await desk.submit())["match"]["match_id"], "th-0")
    refused = await desk.http.post(
        f"/intake/episodes/{episode['episode_id']}/rematch", headers=desk.coordinator
    )
    assert refused.status_code == 409, refused.text
    [error] = refused.json()["errors"]
    assert (error["field"], error["rule"]) == ("episode_id", "no_therapist_to_offer")
    assert "past therapist of this episode" in error["message"]


async def test_effectiveness_events_are_stored_and_raise_the_effective_therapist(
    desk: IntakeDesk,
) -> None:
    await desk.register(therapist_body("th-1"), therapist_body("th-2"))
    runtime = desk.host.runtimes["intake"]
    for therapist_id, rate in (("th-1", 0.2), ("th-2", 0.6)):
        event = Event(
            THERAPIST_EFFECTIVENESS_UPDATED,
            TherapistEffectivenessUpdated(
                therapist_id=therapist_id,
                site_id="site-a",
                domain="depression",
                n=40,
                mean_alliance=None,
                reliable_improvement_rate=EffectivenessEstimate(
                    estimate=rate, lower=rate - 0.1, upper=rate + 0.1
                ),
                deterioration_rate=None,
                classification="effective" if rate > 0.5 else "ineffective",
                updated_at=datetime.now(UTC),
            ),
            source="/rapport/analytics",
        )
        await runtime.send_raw(encode(event, runtime.topic(THERAPIST_EFFECTIVENESS_UPDATED)))

    async def stored() -> bool:
        async with runtime.sessionmaker() as session:
            return len((await session.execute(select(IntakeEffectiveness))).all()) == 2

    await eventually(stored, timeout=10, what="effectiveness stored")
    proposal = (await desk.submit())["match"]
    assert [o["therapist_id"] for o in proposal["options"]] == ["th-2", "th-1"]
    effectiveness = next(p for p in proposal["options"][0]["parts"] if p["code"] == "effectiveness")
    assert effectiveness["points"] > 0


async def test_batch_assignment_places_the_waiting_list_and_names_the_unassignable(
    desk: IntakeDesk,
) -> None:
    await desk.register(therapist_body("th-1", capacity=1), therapist_body("th-2", capacity=1))
    for reference in ("c-1", "c-2", "c-3"):
        await desk.submit(reference)
    await desk.submit("c-fr", languages=["fr"])
    assigned = await desk.http.post(
        "/intake/sites/site-a/waiting-list/assign", headers=desk.coordinator
    )
    assert assigned.status_code == 200, assigned.text
    body = assigned.json()
    assert sorted(p["therapist_id"] for p in body["placements"]) == ["th-1", "th-2"]
    reasons = sorted(u["reason"] for u in body["unassignable"])
    assert reasons == ["capacity_exhausted", "no_eligible_therapist"]
    # Proposals only: nothing is confirmed and no place is reserved.
    assert await desk.caseload("th-1") == 0
    placed = body["placements"][0]
    proposal = await desk.http.get(
        f"/intake/matches/{placed['match_id']}", headers=desk.coordinator
    )
    assert [o["therapist_id"] for o in proposal.json()["options"]] == [placed["therapist_id"]]
    await confirm(desk, placed["match_id"], placed["therapist_id"])
    assert await desk.caseload(placed["therapist_id"]) == 1


async def test_batch_assignment_at_another_site_is_forbidden(desk: IntakeDesk) -> None:
    refused = await desk.http.post(
        "/intake/sites/site-b/waiting-list/assign", headers=desk.coordinator
    )
    assert refused.status_code == 403


async def test_rematch_excludes_past_therapists_and_transfers_the_episode(desk: IntakeDesk) -> None:
    await desk.register(*(therapist_body(f"th-{k}") for k in range(3)))
    episode = await confirm(desk, (await desk.submit())["match"]["match_id"], "th-0")
    episode_id = episode["episode_id"]
    first = await desk.http.post(f"/intake/episodes/{episode_id}/rematch", headers=desk.coordinator)
    assert first.status_code == 201, first.text
    assert first.json()["rematch_of_episode"] == episode_id
    assert {o["therapist_id"] for o in first.json()["options"]} == {"th-1", "th-2"}
    moved = await confirm(desk, first.json()["match_id"], "th-1")
    assert moved["episode_id"] == episode_id and moved["therapist_id"] == "th-1"
    assert moved["past_therapists"] == ["th-0"]
    assert (await desk.caseload("th-0"), await desk.caseload("th-1")) == (0, 1)
    [transferred] = await desk.emitted_of("episode.transferred")
    assert (transferred["from_therapist_id"], transferred["to_therapist_id"]) == ("th-0", "th-1")
    second = await desk.http.post(
        f"/intake/episodes/{episode_id}/rematch", headers=desk.coordinator
    )
    assert [o["therapist_id"] for o in second.json()["options"]] == ["th-2"]


async def test_a_rematch_suggested_alert_proposes_once_without_confirming(desk: IntakeDesk) -> None:
    await desk.register(*(therapist_body(f"th-{k}") for k in range(3)))
    episode = await confirm(desk, (await desk.submit())["match"]["match_id"], "th-0")
    runtime = desk.host.runtimes["intake"]
    for alert_id in ("a-1", "a-2"):
        alert = Event(
            ALLIANCE_ALERT,
            AllianceAlert(
                alert_id=alert_id,
                episode_id=str(episode["episode_id"]),
                site_id="site-a",
                therapist_id="th-0",
                status="opened",
                kind="rematch_suggested",
                severity="high",
                rule="rematch_suggested",
                session_number=4,
                suggestion_code="discuss_rematch",
                at=datetime.now(UTC),
            ),
            source="/rapport/analytics",
        )
        await runtime.send_raw(encode(alert, runtime.topic(ALLIANCE_ALERT)))

    async def proposed() -> bool:
        return any(e.get("rematch_of_episode") for e in await desk.emitted_of("match.proposed"))

    await eventually(proposed, timeout=10, what="a rematch proposal")
    rematches = [e for e in await desk.emitted_of("match.proposed") if e.get("rematch_of_episode")]
    assert len(rematches) == 1
    assert {o["therapist_id"] for o in rematches[0]["options"]} == {"th-1", "th-2"}
    assert await desk.caseload("th-0") == 1


async def test_the_clients_age_group_is_published_on_confirming_and_on_the_rematch(
    desk: IntakeDesk,
) -> None:
    scopes = ["children_adolescents"]
    await desk.register(*(therapist_body(f"th-{k}", scopes=scopes) for k in range(2)))
    submitted = await desk.submit(age_group="adolescent")
    episode = await confirm(desk, submitted["match"]["match_id"], "th-0")
    rematch = await desk.http.post(
        f"/intake/episodes/{episode['episode_id']}/rematch", headers=desk.coordinator
    )
    assert rematch.status_code == 201, rematch.text
    await confirm(desk, rematch.json()["match_id"], "th-1")

    confirmed = await desk.emitted_of("match.confirmed")
    assert [(c["therapist_id"], c["age_group"]) for c in confirmed] == [
        ("th-0", "adolescent"),
        ("th-1", "adolescent"),
    ]
