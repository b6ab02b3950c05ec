"""Webhook signatures (services/notify/signing.py), checked with the independent
``standardwebhooks`` reference package, and the delivery rules (services/notify/domain.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notify.domain import RETRY_SCHEDULE, is_private_address, is_retryable, next_attempt
from services.notify.signing import new_secret, sign, signature_header

BODY = b'{"type":"org.rapport.alliance.alert.v1","episode_id":"ep-1","kind":"rupture"}'
MESSAGE_ID = "dlv_01HZX3"


def headers(signature: str, timestamp: int, message_id: str = MESSAGE_ID) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def now() -> int:
    return int(time.time())


# -- signing -------------------------------------------------------------------------------------


def test_new_secrets_are_whsec_prefixed_and_distinct() -> None:
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_")
    assert first != second


def test_a_signature_verifies_with_the_standard_webhooks_reference() -> None:
    secret, timestamp = new_secret(), now()

    signature = sign(secret, MESSAGE_ID, timestamp, BODY)

    assert Webhook(secret).verify(BODY, headers(signature, timestamp)) == {
        "type": "org.rapport.alliance.alert.v1",
        "episode_id": "ep-1",
        "kind": "rupture",
    }


def test_a_signature_is_the_same_as_the_reference_implementations() -> None:
    secret, timestamp = new_secret(), now()
    reference = Webhook(secret).sign(
        MESSAGE_ID, datetime.fromtimestamp(timestamp, tz=UTC), BODY.decode()
    )

    assert sign(secret, MESSAGE_ID, timestamp, BODY) == reference


def test_a_tampered_body_does_not_verify() -> None:
    secret, timestamp = new_secret(), now()
    signature = sign(secret, MESSAGE_ID, timestamp, BODY)
    tampered = BODY.replace(b"rupture", b"repair!")

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers(signature, timestamp))


def test_a_signature_for_another_message_id_does_not_verify() -> None:
    secret, timestamp = new_secret(), now()
    signature = sign(secret, MESSAGE_ID, timestamp, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers(signature, timestamp, message_id="dlv_other"))


def test_a_signature_made_with_another_secret_does_not_verify() -> None:
    timestamp = now()
    signature = sign(new_secret(), MESSAGE_ID, timestamp, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers(signature, timestamp))


def test_a_signature_older_than_five_minutes_does_not_verify() -> None:
    secret = new_secret()
    stale = now() - 6 * 60
    signature = sign(secret, MESSAGE_ID, stale, BODY)

    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers(signature, stale))


def test_a_signature_four_minutes_old_still_verifies() -> None:
    secret = new_secret()
    recent = now() - 4 * 60
    signature = sign(secret, MESSAGE_ID, recent, BODY)

    Webhook(secret).verify(BODY, headers(signature, recent))


@pytest.mark.parametrize("which", [0, 1], ids=["old-secret", "new-secret"])
def test_during_rotation_the_header_verifies_with_either_secret(which: int) -> None:
    secrets_in_use, timestamp = [new_secret(), new_secret()], now()

    header = signature_header(secrets_in_use, MESSAGE_ID, timestamp, BODY)

    Webhook(secrets_in_use[which]).verify(BODY, headers(header, timestamp))


def test_the_rotation_header_holds_one_v1_signature_per_secret() -> None:
    secrets_in_use, timestamp = [new_secret(), new_secret()], now()

    header = signature_header(secrets_in_use, MESSAGE_ID, timestamp, BODY)

    assert header.split(" ") == [sign(s, MESSAGE_ID, timestamp, BODY) for s in secrets_in_use]
    assert all(part.startswith("v1,") for part in header.split(" "))


def test_the_rotation_header_does_not_verify_with_a_retired_secret() -> None:
    timestamp = now()
    header = signature_header([new_secret(), new_secret()], MESSAGE_ID, timestamp, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers(header, timestamp))


# -- retries ---------------------------------------------------------------------------------

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_the_first_retry_comes_after_the_first_delay() -> None:
    assert next_attempt(1, START) == START + timedelta(seconds=5)


@pytest.mark.parametrize("attempts", range(1, len(RETRY_SCHEDULE) + 1))
def test_next_attempt_follows_the_retry_schedule(attempts: int) -> None:
    assert next_attempt(attempts, START) == START + RETRY_SCHEDULE[attempts - 1]


def test_the_last_retry_comes_after_the_last_delay() -> None:
    attempts = len(RETRY_SCHEDULE)

    assert next_attempt(attempts, START) == START + timedelta(hours=24)


def test_there_is_no_next_attempt_once_the_schedule_is_spent() -> None:
    assert next_attempt(len(RETRY_SCHEDULE) + 1, START) is None


def test_the_retry_schedule_grows_and_spans_about_three_days() -> None:
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)
    assert timedelta(days=3) <= sum(RETRY_SCHEDULE, timedelta()) <= timedelta(days=3, hours=6)


def test_next_attempt_follows_a_custom_schedule() -> None:
    schedule = (timedelta(seconds=1), timedelta(seconds=2))

    assert next_attempt(2, START, schedule) == START + timedelta(seconds=2)
    assert next_attempt(3, START, schedule) is None


@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504])
def test_network_errors_429_and_5xx_are_retried(status: int | None) -> None:
    assert is_retryable(status) is True


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 499])
def test_other_4xx_are_permanent(status: int) -> None:
    assert is_retryable(status) is False


# -- SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.0",
        "172.31.255.255",
        "192.168.1.10",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
    ],
)
def test_loopback_private_and_link_local_addresses_are_private(address: str) -> None:
    assert is_private_address(address) is True


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "172.15.255.255", "172.32.0.0", "2001:4860:4860::8888"]
)
def test_public_addresses_are_not_private(address: str) -> None:
    assert is_private_address(address) is False


@pytest.mark.parametrize("address", ["100.64.0.1", "100.100.100.200"])
def test_shared_address_space_is_not_a_public_target(address: str) -> None:
    """RFC 6598 carrier-grade NAT space is not publicly routable; 100.100.100.200 is a cloud
    metadata endpoint (Alibaba Cloud), a classic SSRF target."""
    assert is_private_address(address) is True
