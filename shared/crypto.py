"""Pseudonyms and field encryption.

Clients appear in topics and logs only as keyed pseudonyms: ``p1_`` + the first 128 bits of
HMAC-SHA256(deployment key, client reference). The key never leaves the services' secrets, so a
data team cannot reverse a pseudonym, and the same client gets the same pseudonym everywhere.
Free text is sealed with AES-256-GCM under a key that can be destroyed (crypto-shredding).
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
