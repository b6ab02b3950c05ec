"""A correlation id and a W3C trace travel from the HTTP request through every hop: the
events each service emits carry them in Kafka headers, and every log line says them."""

from __future__ import annotations

import json
import logging

import httpx

import services
from shared.auth import mint_token
from shared.host import Host
from shared.settings import Settings
from tests.support.outbox import outbox_rows
from tests.support.waiting import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        formatter = logging.getLogger().handlers[0].formatter
        assert formatter is not None
        self.lines.append(json.loads(formatter.format(record)))


async def outbox_headers(host: Host, service: str) -> list[dict[str, str]]:
    return [row.headers for row in await outbox_rows(host, service)]


async def test_correlation_and_trace_follow_a_request_across_services_and_into_logs(
    embedded_settings: Settings,
) -> None:
    captured = Captured()
    root = logging.getLogger()
    root.addHandler(captured)
    previous = root.level
    root.setLevel(logging.DEBUG)
    host = Host(
        embedded_settings, services.definitions(["intake", "feedback", "analytics"]), embedded=True
    )
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            coordinator = {
                "Authorization": "Bearer "
                + mint_token(embedded_settings, "c", "intake_coordinator", ["site-a"])
            }
            opened = await http.post(
                "/intake/episodes",
                headers=coordinator,
                json={"site_id": "site-a", "therapist_id": "th-1", "client_reference": "x-1"},
            )
            episode_id = opened.json()["episode_id"]
            therapist = {
                "Authorization": "Bearer "
                + mint_token(embedded_settings, "th-1", "therapist", ["site-a"])
            }

            async def known() -> bool:
                got = await http.get(
                    f"/feedback/episodes/{episode_id}/responses", headers=therapist
                )
                return got.status_code == 200

            await eventually(known)
            response = await http.post(
                "/feedback/responses",
                headers={
                    **therapist,
                    "X-Correlation-ID": "corr-42",
                    "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
                },
                json={
                    "episode_id": episode_id,
                    "session_number": 1,
                    "respondent_role": "client",
                    "instrument": "srs",
                    "items": {"relationship": 9, "goals": 9, "approach": 9, "overall": 9},
                },
            )
            assert response.status_code == 201
            assert response.headers["x-correlation-id"] == "corr-42"
            assert response.headers["traceparent"].split("-")[1] == TRACE_ID

            async def analytics_emitted() -> bool:
                return len(await outbox_headers(host, "analytics")) >= 1

            await eventually(analytics_emitted)
        for service in ("feedback", "analytics"):
            emitted = await outbox_headers(host, service)
            assert emitted, service
            for headers in emitted:
                assert headers["correlation_id"] == "corr-42", service
                assert headers["traceparent"].split("-")[1] == TRACE_ID, service
        ours = [line for line in captured.lines if line.get("correlation_id") == "corr-42"]
        assert {line["event"] for line in ours} >= {"http request", "event handled"}
        assert all(line.get("trace_id") == TRACE_ID for line in ours)
        assert all({"timestamp", "level", "event", "service"} <= line.keys() for line in ours)
    finally:
        await host.stop()
        root.removeHandler(captured)
        root.setLevel(previous)
