"""The three ways a message leaves: signed webhooks (Standard Webhooks), email over SMTP, and SMS
through a provider's HTTP interface. Each send is bounded by one timeout and reports an
:class:`Attempt` whose error is a code — never an address or a body."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.base import SOCKET_OPTION

from services.notify import domain, signing
from services.notify.models import NotifyWebhook
from shared.crypto import unseal
from shared.settings import Settings


@dataclass(frozen=True)
class Attempt:
    verdict: domain.Verdict
    status: int | None = None
    error: str | None = None


def _http_attempt(response: httpx.Response) -> Attempt:
    status = response.status_code
    outcome = domain.verdict(status, None)
    return Attempt(outcome, status, None if outcome == "delivered" else f"http_{status}")


def webhook_secrets(hook: NotifyWebhook, key: bytes, now: datetime) -> list[str]:
    """The secrets to sign with: the current one and, during a rotation, the previous one."""
    secrets = [unseal(key, hook.secret_sealed, associated=hook.id)]
    if (
        hook.previous_secret_sealed
        and hook.previous_secret_until is not None
        and hook.previous_secret_until > now
    ):
        secrets.append(unseal(key, hook.previous_secret_sealed, associated=hook.id))
    return secrets


class RefusedAddress(httpcore.ConnectError):
    """The webhook's host resolved to a non-public address at send time (SSRF guard)."""


class PublicOnlyBackend(AsyncNetworkBackend):
    """Resolves the host itself, refuses it when ANY address is loopback, private, link-local
    or otherwise not public, and connects to the address it checked. Checking at connect time,
    not only at registration, defeats DNS rebinding (a name that resolved to a public address
    when registered and to 169.254.169.254 now); connecting to the checked address leaves no
    second lookup to race. TLS still verifies the certificate against the host name (httpcore
    starts TLS with the URL's host as server name)."""

    def __init__(self, inner: AsyncNetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as error:
            raise httpcore.ConnectError(f"{host} does not resolve") from error
        addresses = [str(info[4][0]) for info in infos]
        if not addresses or any(domain.is_private_address(a) for a in addresses):
            raise RefusedAddress(f"{host} resolves to a non-public address")
        return await self.inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise RefusedAddress("webhooks do not go to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def webhook_client(timeout: float, concurrency: int, allow_private: bool) -> httpx.AsyncClient:
    """The client webhooks go out through: no redirects (one could lead past the guard) and,
    unless private targets are allowed (development), :class:`PublicOnlyBackend`."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(limits=limits)
    if not allow_private:
        # httpx does not take a network backend; its pool does (same settings otherwise).
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            keepalive_expiry=5.0,
            network_backend=PublicOnlyBackend(),
        )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), follow_redirects=False, transport=transport
    )


class Channels:
    def __init__(self, settings: Settings, concurrency: int) -> None:
        self.settings = settings
        self.timeout = settings.notify_send_timeout_seconds
        self.webhooks = webhook_client(self.timeout, concurrency, settings.allow_private_webhooks)
        # The SMS provider is the operator's own configuration, possibly an internal gateway.
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    async def aclose(self) -> None:
        await self.webhooks.aclose()
        await self.http.aclose()

    async def webhook(
        self, delivery_id: str, body: bytes, hook: NotifyWebhook, secrets: list[str]
    ) -> Attempt:
        if not hook.active:
            return Attempt("failed", None, "endpoint_disabled")
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery_id,  # the same on every attempt, so receivers can dedupe
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(secrets, delivery_id, timestamp, body),
        }
        try:
            response = await asyncio.wait_for(
                self.webhooks.post(hook.url, content=body, headers=headers), self.timeout
            )
        except (httpx.HTTPError, TimeoutError) as error:
            if isinstance(error.__cause__, RefusedAddress):
                # A policy refusal, not an outage: retrying would only try the same address.
                return Attempt("failed", None, "private_address")
            return Attempt("retry", None, type(error).__name__)
        return _http_attempt(response)

    async def email(self, delivery_id: str, address: str, subject: str, text: str) -> Attempt:
        settings = self.settings
        if not settings.notify_smtp_host:
            return Attempt("failed", None, "channel_not_configured")
        message = EmailMessage()
        message["From"] = settings.notify_smtp_from
        message["To"] = address
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        # The delivery id as Message-ID: a resend after a crash is recognisably the same mail.
        message["Message-ID"] = f"<{delivery_id}@rapport.notify>"
        message["X-Rapport-Delivery"] = delivery_id
        message.set_content(text)
        password = settings.notify_smtp_password
        try:
            await asyncio.wait_for(
                aiosmtplib.send(
                    message,
                    hostname=settings.notify_smtp_host,
                    port=settings.notify_smtp_port,
                    username=settings.notify_smtp_username,
                    password=password.get_secret_value() if password else None,
                    use_tls=settings.notify_smtp_tls == "tls",
                    start_tls=settings.notify_smtp_tls == "starttls",
                    timeout=self.timeout,
                ),
                self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [r.code for r in refused.recipients]
            permanent = all(code >= 500 for code in codes)
            return Attempt("failed" if permanent else "retry", None, f"smtp_{min(codes)}")
        except aiosmtplib.SMTPResponseException as error:
            return Attempt("failed" if error.code >= 500 else "retry", None, f"smtp_{error.code}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return Attempt("retry", None, type(error).__name__)
        return Attempt("delivered", 250, None)

    async def sms(self, delivery_id: str, phone: str, text: str) -> Attempt:
        settings = self.settings
        if not settings.notify_sms_provider_url:
            return Attempt("failed", None, "channel_not_configured")
        headers = {"Idempotency-Key": delivery_id}
        if settings.notify_sms_provider_token is not None:
            token = settings.notify_sms_provider_token.get_secret_value()
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await asyncio.wait_for(
                self.http.post(
                    settings.notify_sms_provider_url,
                    json={"to": phone, "text": text, "reference": delivery_id},
                    headers=headers,
                ),
                self.timeout,
            )
        except (httpx.HTTPError, TimeoutError) as error:
            return Attempt("retry", None, type(error).__name__)
        attempt = _http_attempt(response)
        # A provider's 410 is not an endpoint of a site to disable: a permanent failure.
        return (
            Attempt("failed", attempt.status, attempt.error)
            if attempt.verdict == "gone"
            else attempt
        )
