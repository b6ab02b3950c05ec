"""Scores back to the chart by webhook (issue 20, capability 3), on the real stack: a site whose
policy turns ``results.webhook`` on gets, for each ``feedback.recorded``, one signed webhook per
endpoint carrying the response's FHIR Observations (validated as R4 by fhir.resources: LOINC
total code, band and clinical-range interpretation, subscales, ``derivedFrom`` the
QuestionnaireResponse, the client's pseudonym as subject), once however often the event comes;
a site that did not opt in gets nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from fhir.resources.R4B.observation import Observation

from services.feedback import domain as feedback_domain
from shared.contracts import FEEDBACK_RECORDED, FeedbackRecorded
from shared.events import Event
from shared.instruments import SHIPPED, load_instruments
from tests.support.notify import pseudonym
from tests.support.notify_stack import NotifyStack
from tests.support.waiting import eventually

INSTRUMENTS = load_instruments(SHIPPED)
LOINC = "http://loinc.org"


def scored_event(
    site: str, episode_id: str, instrument_id: str, answers: dict[str, int], role: str = "client"
) -> Event[FeedbackRecorded]:
    """A ``feedback.recorded`` as feedback publishes it, scored by feedback's own rule."""
    instrument = INSTRUMENTS[instrument_id]
    scored = feedback_domain.score(instrument, {k: Decimal(v) for k, v in answers.items()})
    return Event(
        FEEDBACK_RECORDED,
        FeedbackRecorded(
            response_id=str(uuid.uuid4()),
            episode_id=episode_id,
            site_id=site,
            therapist_id="th-1",
            session_number=2,
            respondent=pseudonym(f"{episode_id}-{role}"),
            respondent_role=role,  # type: ignore[arg-type]
            instrument=instrument_id,
            instrument_version=instrument.version,
            items={k: float(v) for k, v in scored.items.items()},
            total=float(scored.total),
            subscales={k: float(v) for k, v in scored.subscales.items()},
            band=scored.band,
            in_concern_or_clinical_range=scored.in_concern_or_clinical_range,
            answered_at=datetime.now(UTC),
        ),
        source="/tests",
    )


async def handled(stack: NotifyStack, *events: Event[FeedbackRecorded]) -> None:
    async def all_in() -> bool:
        count = await stack.scalar(
            "select count(*) from notify_inbox where event_id = any(:ids)",
            ids=[e.id for e in events],
        )
        return bool(count == len(events))

    await eventually(all_in, timeout=30, what="notify to take the feedback.recorded events")


async def test_a_site_that_opts_in_gets_each_response_as_r4_observations_once_per_endpoint(
    stack: NotifyStack,
) -> None:
    site = "site-results-on"
    await stack.webhook(site, "results-ehr")
    await stack.webhook(site, "results-ehr-2")
    await stack.policy(site, {"results": {"webhook": True}})
    phq9 = scored_event(site, "ep-res-1", "phq-9", {**{str(i): 2 for i in range(1, 9)}, "9": 0})
    wai = scored_event(site, "ep-res-1", "wai-sr", {str(i): 4 for i in range(1, 13)})
    again = Event(phq9.type, phq9.data, source="/tests")  # the same response, another event id

    await stack.publisher.publish(phq9, wai)
    await stack.publisher.publish(phq9, again)

    async def both_sent() -> bool:
        return all(len(stack.endpoints.accepted(n)) >= 2 for n in ("results-ehr", "results-ehr-2"))

    await eventually(both_sent, timeout=30, what="the results webhooks")
    await handled(stack, phq9, wai, again)
    await asyncio.sleep(1.0)  # a duplicate would have its chance now
    for name in ("results-ehr", "results-ehr-2"):
        calls = stack.endpoints.accepted(name)
        assert len(calls) == 2  # one per response, however often its event came
        assert all(c.verified_with == [0] for c in calls)  # Standard Webhooks signature
        assert {c.body["type"] for c in calls} == {"feedback.recorded"}

    by_response = {
        c.body["data"]["response_id"]: c.body for c in stack.endpoints.accepted("results-ehr")
    }
    body = by_response[phq9.data.response_id]
    assert body["data"]["total"] == 16 and body["data"]["band"] == "moderately_severe"
    assert "items" not in body["data"]  # the scores, not the answers
    (total,) = [Observation.model_validate(o) for o in body["data"]["observations"]]
    assert (total.code.coding[0].system, total.code.coding[0].code) == (LOINC, "44261-6")
    assert float(total.valueQuantity.value) == 16
    assert [i.coding[0].code for i in total.interpretation] == ["moderately_severe", "A"]
    assert total.derivedFrom[0].reference == f"QuestionnaireResponse/{phq9.data.response_id}"
    assert total.subject.identifier.value == phq9.data.respondent  # the client's pseudonym
    assert total.status == "final"

    wai_observations = [
        Observation.model_validate(o)
        for o in by_response[wai.data.response_id]["data"]["observations"]
    ]
    assert len(wai_observations) == 1 + len(wai.data.subscales) > 1  # total, then each subscale
    assert {float(o.valueQuantity.value) for o in wai_observations[1:]} == {
        float(v) for v in wai.data.subscales.values()
    }
    kinds = {d["kind"] for d in await stack.deliveries(site)}
    assert kinds == {"results"}


async def test_a_site_that_did_not_opt_in_gets_no_results(stack: NotifyStack) -> None:
    site = "site-results-off"
    await stack.webhook(site, "results-off")
    await stack.policy(site, {"rules": [{"to": ["therapist"], "channels": ["webhook"]}]})
    recorded = scored_event(site, "ep-res-2", "phq-9", {str(i): 1 for i in range(1, 10)})

    await stack.publisher.publish(recorded)
    await handled(stack, recorded)
    await asyncio.sleep(1.0)
    assert stack.endpoints.tried("results-off") == []
    assert await stack.deliveries(site) == []
