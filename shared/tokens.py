"""Signed, expiring tokens for clients' one-time feedback links.

A token binds one episode, one session and one respondent; it is signed with a key derived
from the deployment's encryption key, so notify (which sends the link) and feedback (which
accepts the answer) agree without sharing a table. Single use is enforced by feedback, which
records each token id when it is used. Nothing in a token identifies a person: it carries the
episode id, the session number, the respondent's pseudonym and the role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from shared.crypto import derive_key

PURPOSE = "feedback-link-v1"


class TokenError(Exception):
    """The token is malformed, forged or expired; ``rule`` says which."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class FeedbackGrant:
    token_id: str
    episode_id: str
    session_number: int
    respondent: str
    role: str
    instruments: tuple[str, ...]
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(
    master_key: str,
    *,
    episode_id: str,
    session_number: int,
    respondent: str,
    role: str,
    instruments: tuple[str, ...],
    ttl_seconds: int,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "t": secrets.token_hex(12),
        "e": episode_id,
        "s": session_number,
        "r": respondent,
        "o": role,
        "i": list(instruments),
        "x": issued + ttl_seconds,
    }
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(derive_key(master_key, PURPOSE), body.encode(), hashlib.sha256)
    return f"{body}.{_b64(signature.digest())}"


def verify(master_key: str, token: str, now: float | None = None) -> FeedbackGrant:
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature or len(token) > 2048:
        raise TokenError("malformed", "the link is not a Rapport feedback link")
    expected = hmac.new(derive_key(master_key, PURPOSE), body.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
    except ValueError:
        raise TokenError("malformed", "the link is not a Rapport feedback link") from None
    if not hmac.compare_digest(expected, given):
        raise TokenError("forged", "the link's signature is not valid")
    try:
        claims = json.loads(_unb64(body))
        grant = FeedbackGrant(
            token_id=str(claims["t"]),
            episode_id=str(claims["e"]),
            session_number=int(claims["s"]),
            respondent=str(claims["r"]),
            role=str(claims["o"]),
            instruments=tuple(str(i) for i in claims["i"]),
            expires_at=int(claims["x"]),
        )
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed", "the link's contents are not readable") from None
    if (now if now is not None else time.time()) >= grant.expires_at:
        raise TokenError("expired", "the link has expired; ask the clinic for a new one")
    return grant
