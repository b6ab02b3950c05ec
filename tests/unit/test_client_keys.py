"""Per-client data keys: values sealed under a client's key are readable while the key exists
and never again once it is destroyed; values sealed before per-client keys stay readable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.models import CLIENT_KEYS
from services.intake.usecases.references import (
    REFERENCE_KEY_PURPOSE,
    seal_reference,
    unseal_reference,
)
from shared.contracts import MatchConfirmed
from shared.crypto import derive_key, is_client_sealed, seal, seal_for_client, unseal_for_client
from shared.erasure import ClientKeys, client_keys_table, subjects_of
from shared.settings import load_settings

CLIENT = "p1_" + "a" * 32


@pytest.fixture
async def session() -> AsyncIterator[AsyncSession]:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(CLIENT_KEYS.metadata.create_all, tables=[CLIENT_KEYS])
    async with AsyncSession(engine) as session, session.begin():
        yield session
    await engine.dispose()


def test_a_value_sealed_for_a_client_is_marked_and_needs_that_clients_key() -> None:
    key, other = bytes(32), bytes([1]) * 32
    token = seal_for_client(key, "MRN-1", associated="intake-1")
    assert is_client_sealed(token) and "MRN-1" not in token
    assert unseal_for_client(key, token, associated="intake-1") == "MRN-1"
    with pytest.raises(InvalidTag):
        unseal_for_client(other, token, associated="intake-1")


async def test_a_destroyed_client_key_makes_the_reference_unrecoverable(
    session: AsyncSession,
) -> None:
    settings = load_settings()
    sealed = await seal_reference(session, settings, CLIENT, "MRN-1", "intake-1")
    assert await unseal_reference(session, settings, CLIENT, sealed, "intake-1") == "MRN-1"
    master = derive_key(settings.encryption_key.get_secret_value(), "intake-client-keys")
    assert await ClientKeys(CLIENT_KEYS, master).shred(session, [CLIENT]) == 1
    with pytest.raises(LookupError):
        await unseal_reference(session, settings, CLIENT, sealed, "intake-1")
    # A new key for the same pseudonym does not open the old value either.
    fresh = await ClientKeys(CLIENT_KEYS, master).key(session, CLIENT)
    with pytest.raises(InvalidTag):
        unseal_for_client(fresh, sealed, "intake-1")


async def test_a_reference_sealed_before_client_keys_stays_readable(session: AsyncSession) -> None:
    settings = load_settings()
    legacy = seal(
        derive_key(settings.encryption_key.get_secret_value(), REFERENCE_KEY_PURPOSE),
        "MRN-OLD",
        associated="intake-0",
    )
    assert not is_client_sealed(legacy)
    assert await unseal_reference(session, settings, CLIENT, legacy, "intake-0") == "MRN-OLD"


def test_the_keys_table_of_a_service_is_its_own() -> None:
    assert client_keys_table("x", MetaData()).name == "x_client_keys"


def test_an_event_is_about_its_client_members_and_episode() -> None:
    partner = "p1_" + "b" * 32
    data = MatchConfirmed.model_validate(
        {
            "match_id": "m-1",
            "episode_id": "e-1",
            "site_id": "site-a",
            "therapist_id": "th-1",
            "client": CLIENT,
            "members": [{"respondent": partner, "role": "partner"}],
            "confirmed_at": "2026-01-01T00:00:00Z",
        }
    )
    assert subjects_of(data) == {CLIENT, partner, "e-1"}
