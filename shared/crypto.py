"""Pseudonyms and field encryption.

Clients appear in topics and logs only as keyed pseudonyms: ``p1_`` + the first 128 bits of
HMAC-SHA256(deployment key, client reference). The key never leaves the services' secrets, so a
data team cannot reverse a pseudonym, and the same client gets the same pseudonym everywhere.
Free text is sealed with AES-256-GCM under a key that can be destroyed (crypto-shredding): each
client has its own data key, stored wrapped by the service key; erasure deletes it, and every
value sealed under it (``c1.`` + token) can never be read again, wherever a copy survives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PSEUDONYM_VERSION = "p1_"


def pseudonymise(key: str, reference: str) -> str:
    digest = hmac.new(key.encode(), reference.strip().encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_VERSION + digest[:32]


def derive_key(master: str, purpose: str) -> bytes:
    """A 256-bit key for one purpose, derived from a master secret."""
    return hmac.new(master.encode(), purpose.encode(), hashlib.sha256).digest()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: str, associated: str = "") -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), associated.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(key: bytes, token: str, associated: str = "") -> str:
    raw = base64.urlsafe_b64decode(token.encode())
    return AESGCM(key).decrypt(raw[:12], raw[12:], associated.encode()).decode()


# -- per-client data keys (crypto-shredding) ---------------------------------------------------

CLIENT_SEALED = "c1."  # marks a value sealed under its client's own data key


def wrap_key(service_key: bytes, data_key: bytes, client: str) -> str:
    """A client's data key sealed with the service key (bound to the client's pseudonym)."""
    return seal(service_key, data_key.hex(), associated=client)


def unwrap_key(service_key: bytes, wrapped: str, client: str) -> bytes:
    return bytes.fromhex(unseal(service_key, wrapped, associated=client))


def seal_for_client(data_key: bytes, plaintext: str, associated: str = "") -> str:
    """Seal under the client's data key; destroying that key makes the value unrecoverable."""
    return CLIENT_SEALED + seal(data_key, plaintext, associated)


def is_client_sealed(token: str) -> bool:
    """Sealed under a client key (else: an older value sealed under a service key)."""
    return token.startswith(CLIENT_SEALED)


def unseal_for_client(data_key: bytes, token: str, associated: str = "") -> str:
    return unseal(data_key, token.removeprefix(CLIENT_SEALED), associated)
