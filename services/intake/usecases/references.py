"""The clinic's client reference: published only as a keyed pseudonym, stored sealed under the
client's own data key (destroyed on erasure, so every sealed copy becomes unreadable)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.models import CLIENT_KEYS
from shared.crypto import (
    derive_key,
    is_client_sealed,
    pseudonymise,
    seal_for_client,
    unseal,
    unseal_for_client,
)
from shared.erasure import ClientKeys
from shared.settings import Settings

# Values sealed before per-client keys (no ``c1.`` mark) stay readable with this service key.
REFERENCE_KEY_PURPOSE = "intake-client-reference"
CLIENT_KEYS_PURPOSE = "intake-client-keys"


def client_pseudonym(settings: Settings, site_id: str, reference: str) -> str:
    """The client's pseudonym: the same for the same reference at the same site."""
    return pseudonymise(settings.pseudonym_key.get_secret_value(), f"client:{site_id}:{reference}")


def member_pseudonym(settings: Settings, owner_id: str, reference: str) -> str:
    """A partner's or family member's pseudonym, scoped to the intake or episode naming them."""
    return pseudonymise(settings.pseudonym_key.get_secret_value(), f"{owner_id}:{reference}")


def client_keys(settings: Settings) -> ClientKeys:
    master = derive_key(settings.encryption_key.get_secret_value(), CLIENT_KEYS_PURPOSE)
    return ClientKeys(CLIENT_KEYS, master)


async def seal_reference(
    session: AsyncSession, settings: Settings, client: str, reference: str, associated: str
) -> str:
    key = await client_keys(settings).key(session, client)
    return seal_for_client(key, reference, associated)


async def unseal_reference(
    session: AsyncSession, settings: Settings, client: str, sealed: str, associated: str
) -> str:
    if is_client_sealed(sealed):
        key = await client_keys(settings).existing(session, client)
        if key is None:
            raise LookupError("the client's data key was destroyed (erasure)")
        return unseal_for_client(key, sealed, associated)
    legacy = derive_key(settings.encryption_key.get_secret_value(), REFERENCE_KEY_PURPOSE)
    return unseal(legacy, sealed, associated)
