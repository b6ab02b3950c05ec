"""Webhook safety (services/notify): a webhook URL whose host is or resolves to a loopback,
private, link-local or otherwise non-public address — IPv4 or IPv6, also wrapped in IPv6 — is
refused at registration (422 naming the field and rule) and again at send time (a name that
resolved elsewhere when registered: DNS rebinding), unless the development setting
``RAPPORT_ALLOW_PRIVATE_WEBHOOKS`` allows it (default: off, in every environment).

What arrives is checked by a receiver built on the independent ``standardwebhooks`` package:
tampered bodies and stale timestamps (> 5 minutes) fail verification, and a replayed
``webhook-id`` is recognised by the receiver (tests/support/receiver.py) and not acted on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import services
from services.notify import signing
from services.notify.channels import Channels
from services.notify.domain import is_private_address
from services.notify.models import NotifyWebhook
from shared.auth import mint_token
from shared.crypto import seal
from shared.host import Host
from shared.settings import Settings, load_settings
from tests.support.receiver import WebhookReceiver

KEY = b"k" * 32
PRODUCTION_SECRETS = {
    "jwt_secret": "j" * 40,
    "pseudonym_key": "p" * 40,
    "encryption_key": "e" * 40,
}
BODY = json.dumps({"type": "org.rapport.alliance.alert.v1", "kind": "rupture"}).encode()

PRIVATE_URLS = [
    "http://127.0.0.1/hook",
    "http://127.9.9.9:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[2002:7f00:1::]/hook",  # 6to4 wrapping 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 wrapping 169.254.169.254
    "http://[::]/hook",
]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "fdff:ffff::1",
        "::ffff:10.0.0.1",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo wrapping 127.0.0.1
        "64:ff9b::7f00:1",
        "ff02::1",
    ],
)
def test_non_public_addresses_are_private(address: str) -> None:
    assert is_private_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"]
)
def test_public_addresses_are_not_private(address: str) -> None:
    assert not is_private_address(address)


async def notify_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    host = Host(settings, services.definitions(["notify"]), embedded=True)
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            yield http, settings
    finally:
        await host.stop()


def settings_at(folder: Path, allow_private: bool) -> Settings:
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/{{service}}.db",
        redis_url="memory://",
        allow_private_webhooks=allow_private,
    )


@pytest.fixture(scope="module")
async def guarded(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    async for pair in notify_app(settings_at(tmp_path_factory.mktemp("guarded"), False)):
        yield pair


def admin(settings: Settings) -> dict[str, str]:
    token = mint_token(settings, "admin-1", "site_admin", ["site-a"])
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_registering_a_webhook_to_a_non_public_address_is_refused(
    guarded: tuple[httpx.AsyncClient, Settings], url: str
) -> None:
    http, settings = guarded

    refused = await http.post(
        "/notify/webhooks", json={"site_id": "site-a", "url": url}, headers=admin(settings)
    )

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == [{"field": "url", "rule": "private_address"}]
    listed = await http.get(
        "/notify/webhooks", params={"site_id": "site-a"}, headers=admin(settings)
    )
    assert url not in listed.text


async def test_the_development_setting_allows_a_loopback_receiver(tmp_path: Path) -> None:
    async for http, settings in notify_app(settings_at(tmp_path, True)):
        allowed = await http.post(
            "/notify/webhooks",
            json={"site_id": "site-a", "url": "http://127.0.0.1:9/hook"},
            headers=admin(settings),
        )
        assert allowed.status_code == 201


def test_the_guard_is_on_unless_the_setting_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAPPORT_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    production = load_settings(environment="production", **PRODUCTION_SECRETS)

    assert production.allow_private_webhooks is False


# -- at send time -----------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    started = WebhookReceiver()
    await started.start()
    yield started
    await started.stop()


def hook_to(url: str, secret: str) -> NotifyWebhook:
    hook_id = str(uuid.uuid4())
    return NotifyWebhook(
        id=hook_id,
        site_id="site-a",
        url=url,
        secret_sealed=seal(KEY, secret, associated=hook_id),
        created_at=datetime.now(UTC),
    )


async def send(url: str, allow_private: bool, receiver: WebhookReceiver, tmp: Path) -> str:
    secret = signing.new_secret()
    receiver.secrets["site-a"] = secret
    channels = Channels(settings_at(tmp, allow_private), concurrency=2)
    try:
        attempt = await channels.webhook(
            f"dlv-{uuid.uuid4().hex[:8]}", BODY, hook_to(url, secret), [secret]
        )
    finally:
        await channels.aclose()
    return f"{attempt.verdict}:{attempt.error}"


async def test_a_name_that_now_resolves_to_loopback_is_refused_at_send_time(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # Registered when the name pointed elsewhere; now it points at the host itself.
    url = f"http://localhost:{receiver.port}/hooks/site-a"

    outcome = await send(url, False, receiver, tmp_path)

    assert outcome == "failed:private_address"
    assert receiver.calls == 0


async def test_a_private_literal_stored_before_the_guard_is_refused_at_send_time(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    outcome = await send(receiver.url("site-a"), False, receiver, tmp_path)

    assert outcome == "failed:private_address"
    assert receiver.calls == 0


async def test_with_the_development_setting_the_same_send_is_delivered(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    outcome = await send(f"http://localhost:{receiver.port}/hooks/site-a", True, receiver, tmp_path)

    assert outcome == "delivered:None"
    assert [r.verified for r in receiver.received] == [True]


# -- what a receiver verifies (standardwebhooks) ----------------------------------------------


async def post(receiver: WebhookReceiver, body: bytes, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(receiver.url("site-a"), content=body, headers=headers)
    assert answer.status_code == 204


def signed(secret: str, message_id: str, body: bytes, age: timedelta) -> dict[str, str]:
    timestamp = int(time.time() - age.total_seconds())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header([secret], message_id, timestamp, body),
    }


@pytest.fixture
def secret(receiver: WebhookReceiver) -> str:
    receiver.secrets["site-a"] = signing.new_secret()
    return receiver.secrets["site-a"]


async def test_a_tampered_body_fails_verification(receiver: WebhookReceiver, secret: str) -> None:
    headers = signed(secret, "msg_1", BODY, timedelta(0))
    tampered = BODY.replace(b"rupture", b"repair")

    await post(receiver, tampered, headers)

    assert [r.verified for r in receiver.received] == [False]


@pytest.mark.parametrize(("minutes", "verified"), [(4, True), (6, False)])
async def test_a_timestamp_older_than_five_minutes_fails_verification(
    receiver: WebhookReceiver, secret: str, minutes: int, verified: bool
) -> None:
    await post(receiver, BODY, signed(secret, "msg_2", BODY, timedelta(minutes=minutes)))

    assert [r.verified for r in receiver.received] == [verified]


async def test_a_replayed_webhook_id_is_recognised_and_not_acted_on_twice(
    receiver: WebhookReceiver, secret: str
) -> None:
    headers = signed(secret, "msg_3", BODY, timedelta(0))

    await post(receiver, BODY, headers)
    await post(receiver, BODY, headers)  # captured and sent again

    assert [(r.verified, r.replay) for r in receiver.received] == [(True, False), (True, True)]


async def test_a_forged_message_does_not_mark_its_id_as_seen(
    receiver: WebhookReceiver, secret: str
) -> None:
    forged = signed(signing.new_secret(), "msg_4", BODY, timedelta(0))

    await post(receiver, BODY, forged)
    await post(receiver, BODY, signed(secret, "msg_4", BODY, timedelta(0)))

    assert [(r.verified, r.replay) for r in receiver.received] == [(False, False), (True, False)]
