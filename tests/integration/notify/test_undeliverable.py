"""A readable event is never poison (issue 23, item 1), on the real Kafka, PostgreSQL and Redis:
a risk answer for a site nobody set up is not dead-lettered. It is recorded as undeliverable,
listed for the site's admins and clinical leads, counted, warned of in readiness, told to the
fallback (the site's own address, else the deployment's ops address) once, and delivered —
once — as soon as the site has a webhook or a contact, also after a restart."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import services
from shared.host import Host
from tests.support.infra import Infra
from tests.support.notify import alert, match_proposed, risk
from tests.support.notify_stack import NotifyStack, notify_stack
from tests.support.system import read_all
from tests.support.waiting import eventually

OPS = "ops@rapport-ops.test"
CLINICAL = ("rupture", "risk", "phq", "srs", "28.5", "ep-", "p1_", "suicid", "harm")


@pytest.fixture(scope="module")
async def ops_stack(infra: Infra) -> AsyncIterator[NotifyStack]:
    """Notify with an ops fallback address (its own database and topic prefix)."""
    async with notify_stack(infra, notify_ops_fallback_email=OPS) as running:
        yield running


async def dead_letters(stack: NotifyStack) -> list[str | None]:
    """The event id of every record in every dead-letter topic notify has (read up to their
    end offsets: a dead letter is written before the offset of the message it replaces is
    committed, so once the events are applied, any there would be is there)."""
    assert stack.host is not None
    topics = sorted(t for t in stack.host.runtimes["notify"].topics() if t.endswith(".dlq"))
    assert topics, "notify has dead-letter topics"
    return [record.header("ce_id") for record in await read_all(stack.settings, topics)]


async def undelivered(
    stack: NotifyStack, site: str, role: str = "clinical_lead", **params: Any
) -> list[dict[str, Any]]:
    got = await stack.api.get(
        "/notify/undelivered", params={"site_id": site, **params}, headers=stack.auth(role, site)
    )
    assert got.status_code == 200, got.text
    result: list[dict[str, Any]] = got.json()
    return result


async def metric(stack: NotifyStack, kind: str, severity: str) -> float:
    text = (await stack.api.get("/metrics")).text
    found = re.search(
        rf'^rapport_notify_undeliverable_total\{{kind="{kind}",severity="{severity}"\}} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


async def applied(stack: NotifyStack, *event_ids: str) -> None:
    async def all_applied() -> bool:
        count = await stack.scalar(
            "select count(*) from notify_inbox where event_id = any(:ids)", ids=list(event_ids)
        )
        return bool(count == len(event_ids))

    await eventually(all_applied, timeout=30, what="the events to be applied")


async def test_a_risk_for_a_site_nobody_set_up_waits_escalates_and_is_delivered_once(
    ops_stack: NotifyStack,
) -> None:
    stack, site = ops_stack, "site-nothing-set-up"
    counted_before = await metric(stack, "risk", "urgent")
    flagged = risk(site, episode_id="ep-undeliv", therapist_id="th-9")  # PHQ-9 item 9 answered
    as_alert = alert(
        site,
        "risk",
        "urgent",
        episode_id="ep-undeliv",
        therapist_id="th-9",
        session_number=flagged.data.session_number,
        respondent=flagged.data.respondent,
        inputs={"instrument": "phq-9", "item_9": 1.0},
    )

    await stack.publisher.publish(flagged, as_alert)

    await applied(stack, flagged.id, as_alert.id)
    assert await dead_letters(stack) == []
    (waiting,) = await undelivered(stack, site)
    assert (waiting["kind"], waiting["urgent"], waiting["status"], waiting["reason"]) == (
        "risk",
        True,
        "waiting",
        "site_not_set_up",
    )
    assert (waiting["episode_id"], waiting["therapist_id"]) == ("ep-undeliv", "th-9")
    (for_admin,) = await undelivered(stack, site, role="site_admin")
    assert for_admin["episode_id"] is None and for_admin["therapist_id"] is None
    refused = await stack.api.get(
        "/notify/undelivered", params={"site_id": site}, headers=stack.auth("supervisor", site)
    )
    assert refused.status_code == 403
    assert await metric(stack, "risk", "urgent") == counted_before + 1

    ready = await stack.api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert "urgent notice waits" in ready.json()["warnings"]["notify.undelivered"]

    async def ops_told() -> bool:
        return bool(stack.smtp.to(OPS))

    await eventually(ops_told, timeout=20, what="the ops fallback's email")
    (mail,) = stack.smtp.to(OPS)
    assert "URGENT" in mail.subject and site in mail.text
    assert not any(word in (mail.subject + mail.text).lower() for word in CLINICAL)
    (escalated,) = await undelivered(stack, site)
    assert escalated["fallback"] == "ops" and escalated["fallback_at"] is not None

    hook_id, _ = await stack.webhook(site, "late-route")

    async def delivered() -> bool:
        return bool(stack.endpoints.accepted("late-route"))

    await eventually(delivered, timeout=20, what="the risk at the newly registered webhook")
    await asyncio.sleep(1.5)  # room for a second message, which must not come
    (call,) = stack.endpoints.tried("late-route")
    assert call.verified_with == [0]
    assert call.body["urgent"] is True
    assert call.body["data"]["kind"] == "risk" and call.body["data"]["episode_id"] == "ep-undeliv"
    assert {r["role"] for r in call.body["recipients"]} == {"therapist", "clinical_lead"}
    assert len(stack.smtp.to(OPS)) == 1
    assert await undelivered(stack, site) == []
    (routed,) = await undelivered(stack, site, status="routed")
    assert routed["routed_at"] is not None and routed["fallback"] == "ops"
    assert "warnings" not in (await stack.api.get("/readyz")).json()
    log = await stack.deliveries(site)
    assert sorted((d["kind"], d["recipient"], d["status"]) for d in log) == [
        ("alert", f"endpoint:{hook_id}", "delivered"),
        ("fallback", "fallback:ops", "delivered"),
    ]
    assert await dead_letters(stack) == []


async def test_a_sites_own_fallback_address_is_told_instead_of_ops(
    ops_stack: NotifyStack,
) -> None:
    stack, site = ops_stack, "site-with-fallback"
    put = await stack.api.put(
        f"/notify/fallbacks/{site}",
        json={"email": "on-call@clinic-fallback.test"},
        headers=stack.auth("site_admin", site),
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "site_id": site,
        "has_email": True,
        "ops_fallback": True,
        "updated_at": put.json()["updated_at"],
        "updated_by": "user-1",
    }
    ops_before = len(stack.smtp.to(OPS))
    flagged = risk(site, episode_id="ep-fallback")

    await stack.publisher.publish(flagged)

    async def site_told() -> bool:
        return bool(stack.smtp.to("on-call@clinic-fallback.test"))

    await eventually(site_told, timeout=20, what="the site's fallback email")
    await asyncio.sleep(1.0)
    assert len(stack.smtp.to("on-call@clinic-fallback.test")) == 1
    assert len(stack.smtp.to(OPS)) == ops_before
    (waiting,) = await undelivered(stack, site)
    assert waiting["fallback"] == "site"
    stored = await stack.scalar(
        "select email_sealed from notify_site_fallbacks where site_id = :s", s=site
    )
    assert "on-call" not in stored  # sealed

    await stack.webhook(site, "fallback-site")

    async def delivered() -> bool:
        return bool(stack.endpoints.accepted("fallback-site"))

    await eventually(delivered, timeout=20, what="the risk once the site has a webhook")
    assert await undelivered(stack, site) == []


async def test_a_routine_notice_waits_without_escalation_until_a_contact_exists(
    ops_stack: NotifyStack,
) -> None:
    stack, site = ops_stack, "site-no-coordinator"
    ops_before = len(stack.smtp.to(OPS))
    proposed = match_proposed(site)
    counted_before = await metric(stack, "match_proposed", "routine")

    await stack.publisher.publish(proposed)

    await applied(stack, proposed.id)
    (waiting,) = await undelivered(stack, site, role="site_admin")
    assert (waiting["kind"], waiting["urgent"], waiting["fallback"]) == (
        "match_proposed",
        False,
        None,
    )
    assert await metric(stack, "match_proposed", "routine") == counted_before + 1

    await stack.contact(site, "intake_coordinator", "ic-1", email="intake@late.test")

    async def arrived() -> bool:
        return bool(stack.smtp.to("intake@late.test"))

    await eventually(arrived, timeout=20, what="the coordinator's email once a contact exists")
    await asyncio.sleep(1.0)
    assert len(stack.smtp.to("intake@late.test")) == 1
    assert len(stack.smtp.to(OPS)) == ops_before  # routine: not escalated
    assert await undelivered(stack, site, role="site_admin") == []


async def test_a_waiting_notice_survives_a_restart_and_is_delivered_after_it(
    infra: Infra,
) -> None:
    site = "site-restart"
    async with notify_stack(infra) as stack:
        flagged = risk(site, episode_id="ep-restart")
        await stack.publisher.publish(flagged)
        await applied(stack, flagged.id)
        assert stack.host is not None and stack.http is not None
        await stack.http.aclose()
        await stack.host.stop()  # everything in memory is gone with it

        stack.host = Host(stack.settings, services.definitions(["notify"]))
        app = stack.host.http_app()
        await stack.host.start()
        stack.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://rapport"
        )
        assert len(await undelivered(stack, site)) == 1
        await stack.webhook(site, "after-restart")

        async def delivered() -> bool:
            return bool(stack.endpoints.accepted("after-restart"))

        await eventually(delivered, timeout=20, what="the risk after the restart")
        await asyncio.sleep(1.0)
        assert len(stack.endpoints.tried("after-restart")) == 1
        assert await dead_letters(stack) == []
