"""Sessions as facts (issue 16): how a session of an episode may move from one reported status
to another, and which episodes still take facts. Pure: no I/O.

A session is first ``scheduled`` (optional: a front-end may report only the outcome), then has
one outcome: ``attended``, ``missed`` (did not attend), ``cancelled_by_client`` or
``cancelled_by_clinic``. The status only moves forward; an outcome is final. The same fact
again changes nothing (idempotent); a fact that disagrees with the stored outcome, or goes
back to ``scheduled``, is refused naming the field and the rule (the ``scheduled`` fact the
session had, sent again after its outcome, is the same fact: a diary can be sent twice).

A feedback response for a session implies that the client attended it: a session not yet
reported (or only scheduled) becomes ``attended``, marked implied; a session with another
outcome (missed, cancelled) is left as it is. ``session.completed`` (which notify's
invitations follow) goes out once per session, at its first *reported* attended or missed
fact: an implied attendance is not a report (a response never caused invitations).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.contracts import SessionStatus

SCHEDULED: SessionStatus = "scheduled"
OUTCOMES: tuple[SessionStatus, ...] = (
    "attended",
    "missed",
    "cancelled_by_client",
    "cancelled_by_clinic",
)
# Outcomes that say whether the client came (``session.completed``: attended or not).
COMPLETING: tuple[SessionStatus, ...] = ("attended", "missed")
# Phases after which an episode takes no new session facts; a drop-out still does (a client
# who returns), as do the phases before and during therapy.
FINAL_PHASES = frozenset({"closed", "withdrawn", "transferred"})


@dataclass(frozen=True)
class Fact:
    """One reported fact about one session: its status and when the session is (scheduled) or
    was (an outcome); None when the front-end leaves it to the scheduled time."""

    status: SessionStatus
    at: datetime | None = None
    notice_hours: int | None = None  # a cancellation: hours of notice given
    cancelled_at: datetime | None = None  # a cancellation: when it was made


@dataclass(frozen=True)
class Stored:
    """What is stored of the session: its status, its time, whether the outcome was implied
    by a feedback response (not reported), the time it was scheduled for (if it was)."""

    status: SessionStatus
    at: datetime
    implied_by_feedback: bool = False
    scheduled_for: datetime | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a fact cannot be recorded: the field at fault, the rule, in words."""

    field: str
    rule: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What to do with a fact: ``record`` stores the new status and publishes its
    ``session.*``; ``confirm`` marks an implied attendance as reported; ``repeat`` changes
    nothing. ``completes``: publish ``session.completed`` (the session's first reported
    attended or missed fact)."""

    action: Literal["record", "confirm", "repeat"]
    completes: bool = False


def decide(stored: Stored | None, fact: Fact) -> Decision | Refusal:
    """What a fact does to a session in the state ``stored`` (None: never reported)."""
    if stored is None:
        if fact.at is None:
            return Refusal(
                "at",
                "required_when_not_scheduled",
                "the session was not scheduled: say when it took place (at, with its offset)",
            )
        return Decision("record", completes=fact.status in COMPLETING)
    if stored.status == fact.status:
        if fact.status == SCHEDULED and fact.at is not None and fact.at != stored.at:
            return Refusal(
                "scheduled_for",
                "differs_from_stored",
                f"the session is already scheduled for {stored.at.isoformat()}; a session is "
                "scheduled once (cancel it and schedule the next session instead)",
            )
        if stored.implied_by_feedback:  # the front-end now reports what feedback implied
            return Decision("confirm", completes=True)
        return Decision("repeat")
    if stored.status == SCHEDULED:
        return Decision("record", completes=fact.status in COMPLETING)
    if fact.status == SCHEDULED:
        if fact.at is not None and fact.at == stored.scheduled_for:
            return Decision("repeat")  # it was scheduled so (e.g. the same diary sent again)
        return Refusal(
            "status",
            "goes_backwards",
            f"the session is already {stored.status}: it cannot be scheduled again",
        )
    return Refusal(
        "status",
        "disagrees_with_stored",
        f"the session is already {stored.status}, not {fact.status}",
    )


def accepts_facts(phase: str) -> bool:
    """Whether an episode in ``phase`` takes new session facts."""
    return phase not in FINAL_PHASES


def implied_by_response(stored: Stored | None) -> bool:
    """Whether a feedback response for the session makes it ``attended`` (implied): it was not
    reported yet, or only scheduled."""
    return stored is None or stored.status == SCHEDULED


def notice_hours(at: datetime, cancelled_at: datetime) -> int:
    """Whole hours of notice a cancellation gave before the session (0 when it was made at or
    after the session's time)."""
    return max(0, int((at - cancelled_at).total_seconds() // 3600))
