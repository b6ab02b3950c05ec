"""The keys that seal notify's personal data: staff and fallback addresses (the service key),
clients' addresses (each client's own data key, which erasure destroys: crypto-shredding),
feedback links and webhook signing secrets."""

from __future__ import annotations

from typing import Any

from services.notify.models import CLIENT_KEYS
from shared.crypto import (
    derive_key,
    is_client_sealed,
    seal,
    seal_for_client,
    unseal,
    unseal_for_client,
)
from shared.erasure import ClientKeys


def fallback_owner(site_id: str) -> str:
    """What a site's fallback address is sealed to (its associated data)."""
    return f"fallback:{site_id}"


class Sealing:
    """Seals and unseals notify's personal data under keys derived from the deployment's key."""

    def __init__(self, encryption_key: str) -> None:
        self.encryption_key = encryption_key

    def key(self, purpose: str) -> bytes:
        return derive_key(self.encryption_key, purpose)

    def seal_address(self, value: str, owner_id: str) -> str:
        return seal(self.key("notify-contact-address"), value, associated=owner_id)

    def client_keys(self) -> ClientKeys:
        """Clients' own data keys (wrapped by the service key; erasure destroys them)."""
        return ClientKeys(CLIENT_KEYS, self.key("notify-client-keys"))

    async def seal_client_address(
        self, session: Any, respondent: str, value: str, owner_id: str
    ) -> str:
        key = await self.client_keys().key(session, respondent)
        return seal_for_client(key, value, associated=owner_id)

    def unseal_address(
        self, sealed: str, owner_id: str, client_key: bytes | None = None
    ) -> str | None:
        """A staff address, or a client's (sealed under the client's key: None once that key
        is destroyed). Client addresses sealed before per-client keys use the service key."""
        if is_client_sealed(sealed):
            if client_key is None:
                return None
            return unseal_for_client(client_key, sealed, associated=owner_id)
        return unseal(self.key("notify-contact-address"), sealed, associated=owner_id)

    def seal_link(self, link: str, invitation_id: str) -> str:
        return seal(self.key("notify-feedback-link"), link, associated=invitation_id)

    def unseal_link(self, sealed: str, invitation_id: str) -> str:
        return unseal(self.key("notify-feedback-link"), sealed, associated=invitation_id)

    def webhook_secret_key(self) -> bytes:
        return self.key("notify-webhook-secret")

    def seal_webhook_secret(self, secret: str, webhook_id: str) -> str:
        return seal(self.webhook_secret_key(), secret, associated=webhook_id)
