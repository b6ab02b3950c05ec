"""The values the rules read and write: one scored response (:class:`ScoredRecord`), one fact
about a session (:class:`SessionFact`), what else can make a rule fire (:class:`Occasion`: a
session fact, the clock) and one alert change (:class:`AlertChange`), all immutable and
JSON-ready."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple, Protocol

from services.analytics.domain.kinds import (
    UNTIL_ACKNOWLEDGED,
    Action,
    AlertIdentity,
    AlertKey,
    InputValue,
    Severity,
)

CLIENT_SIDE: Final = frozenset({"client", "partner", "family"})


class UnknownInstrumentError(KeyError):
    """The record names an instrument the analytics service has no definition of."""


class ScoredRecord(NamedTuple):
    """One scored questionnaire response (a ``feedback.recorded`` event, or a replay line).

    ``role`` is the respondent's role (client, partner, family, therapist); ``respondent_id`` is
    their pseudonym. ``items`` are the answers as given (``Decimal`` or ``int``), ``total`` the
    instrument's total (:meth:`shared.instruments.Instrument.total`). A named tuple: immutable
    and cheap to build (the replay builds a million of them).
    """

    episode_id: str
    site_id: str
    therapist_id: str
    session: int
    at: datetime | None
    role: str
    respondent_id: str
    instrument: str
    items: Mapping[str, Decimal | int]
    total: Decimal
    response_id: str | None = None  # which answer this is (an amendment names the one it replaces)

    def to_json(self) -> dict[str, Any]:
        out = {
            "episode_id": self.episode_id,
            "site_id": self.site_id,
            "therapist_id": self.therapist_id,
            "session": self.session,
            "at": self.at.isoformat() if self.at is not None else None,
            "respondent": self.role,
            "respondent_id": self.respondent_id,
            "instrument": self.instrument,
            "items": {k: str(v) for k, v in self.items.items()},
            "total": str(self.total),
        }
        if self.response_id is not None:
            out["response_id"] = self.response_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScoredRecord:
        at = data.get("at")
        return cls(
            episode_id=data["episode_id"],
            site_id=data["site_id"],
            therapist_id=data["therapist_id"],
            session=int(data["session"]),
            at=datetime.fromisoformat(at) if at else None,
            role=data["respondent"],
            respondent_id=data["respondent_id"],
            instrument=data["instrument"],
            items={k: Decimal(str(v)) for k, v in data["items"].items()},
            total=Decimal(str(data["total"])),
            response_id=data.get("response_id"),
        )


class SessionFact(NamedTuple):
    """How one session of an episode turned out (a ``session.*`` event, or a replay line).

    ``status`` is a :data:`shared.contracts.SessionStatus`: scheduled, attended, missed,
    cancelled_by_client or cancelled_by_clinic. ``at`` is when the session took place (or was to
    take place): an attended session is a contact at that instant. ``implied_by_feedback``: no one
    reported the session; a feedback response for it implied it was attended.
    """

    episode_id: str
    site_id: str
    therapist_id: str
    session: int
    status: str
    at: datetime
    implied_by_feedback: bool = False


class Trigger(Protocol):
    """What made a rule fire: a scored record, or an :class:`Occasion`."""

    @property
    def session(self) -> int: ...

    @property
    def respondent_id(self) -> str: ...


class Occasion(NamedTuple):
    """A rule checked without a questionnaire answer: at a session fact (``respondent_id``
    ``"attendance"``) or when a time-driven check fell due (``"clock"``); ``session`` is the
    session the change is reported at (the fact's, or the episode's latest)."""

    session: int
    respondent_id: str


@dataclass(frozen=True, slots=True)
class AlertChange:
    """Open or resolve one alert, saying which rule and which numbers.

    ``respondent_id`` and ``instrument`` are None for the episode-level rules (6, 7, 10, 11);
    ``triggered_by`` is always the respondent whose record produced the change. ``session`` is
    the session of that record; ``opened_session`` the session the alert opened at (same as
    ``session`` for an open). ``lasting`` is False for events (risk, repair) that no rule
    resolves; of those, a risk alert ``awaits_acknowledgement`` by a clinician.

    ``inputs`` are the numbers that fired the rule, JSON-ready: keys and string values are codes
    (lower case, no spaces) and numbers are floats or ints, as ``AllianceAlert.inputs`` requires.
    """

    action: Action
    kind: str
    severity: Severity
    rule: str
    episode_id: str
    respondent_id: str | None
    instrument: str | None
    session: int
    opened_session: int
    inputs: dict[str, InputValue]
    suggestion_code: str
    suggestion: str
    triggered_by: str
    lasting: bool = True

    @property
    def awaits_acknowledgement(self) -> bool:
        """An event alert that stays open until a clinician acknowledges it (risk)."""
        return self.kind in UNTIL_ACKNOWLEDGED

    @property
    def key(self) -> AlertKey:
        """At most one alert is open per key in an episode."""
        return (self.kind, self.respondent_id, self.instrument)

    @property
    def identity(self) -> AlertIdentity:
        """Which alert this change is about: its key and the session it opened at."""
        return (self.kind, self.respondent_id, self.instrument, self.opened_session)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "severity": self.severity,
            "rule": self.rule,
            "episode_id": self.episode_id,
            "respondent_id": self.respondent_id,
            "instrument": self.instrument,
            "session": self.session,
            "opened_session": self.opened_session,
            "inputs": dict(self.inputs),
            "suggestion_code": self.suggestion_code,
            "suggestion": self.suggestion,
            "triggered_by": self.triggered_by,
            "lasting": self.lasting,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertChange:
        return cls(
            action=data["action"],
            kind=data["kind"],
            severity=data["severity"],
            rule=data["rule"],
            episode_id=data["episode_id"],
            respondent_id=data["respondent_id"],
            instrument=data["instrument"],
            session=int(data["session"]),
            opened_session=int(data["opened_session"]),
            inputs=dict(data["inputs"]),
            suggestion_code=data["suggestion_code"],
            suggestion=data["suggestion"],
            triggered_by=data["triggered_by"],
            lasting=bool(data["lasting"]),
        )
