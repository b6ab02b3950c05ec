"""An episode's phases as intake keeps them (docs/clinical-rules.md, Episodes and their phases).

The phases of the clinical spec: ``referred → matched → active → closing → closed``, plus
``dropped_out``, ``transferred`` and ``withdrawn``. Intake owns the phase and publishes every
move (``episode.phase_changed``: from, to, reason code, at); the moves allowed, and why, are
the table :data:`MOVES` below — anything else is refused with :class:`MoveRefused`.

- An episode opens ``matched`` (from a confirmed match, or directly with a chosen therapist):
  the referral (``referred``) became an episode of care.
- ``matched → active`` at the first contact: an attended session or any feedback response.
- ``active → closing`` when the therapist plans the end.
- ``active → dropped_out`` when there was no contact for ``dropout_after_days`` (per site,
  default 28) site-local days: due at the site-local midnight that begins the day that many days
  after the last contact's date (:func:`silence_ends`).
- ``dropped_out → active`` when the client returns (a contact after the drop-out), with the gap.
- Staff close an open episode with a reason: ``completed`` (phase ``closed``), ``dropped_out``
  or ``withdrawn``.
- ``closed``, ``withdrawn`` and ``transferred`` are final. A confirmed rematch transfers the
  episode in place (same id and history, ``episode.transferred``) and keeps its phase, so
  ``transferred`` is never entered by Rapport itself: it is the spec's phase for an episode
  whose care continues outside this episode, and it ends everything.

Erasure deletes the episode's row, so ``erased`` is never a stored phase. Pure: no I/O, no
clock (times are passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from shared.site_time import days_between, start_of_day_after

CloseReason = Literal["completed", "dropped_out", "withdrawn"]
# Where a contact came from (its reason code when it starts the episode).
ContactKind = Literal["attended_session", "feedback"]

OPEN_PHASE: Final = "matched"
# The phases of a closed episode: not closed, rematched or freeing a place again.
CLOSED_PHASES: Final = frozenset({"closed", "dropped_out", "withdrawn"})
# Phases nothing leaves.
FINAL_PHASES: Final = frozenset({"closed", "withdrawn", "transferred"})
# The phase whose silence drops the episode out (the spec: "while the episode is active").
WATCHED_PHASE: Final = "active"

# (from, to) → the reasons (codes) for which the move is allowed.
MOVES: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("referred", "matched"): frozenset({"match_confirmed", "opened_directly"}),
    ("matched", "active"): frozenset({"first_attended_session", "first_feedback"}),
    ("active", "closing"): frozenset({"ending_planned"}),
    ("active", "dropped_out"): frozenset({"no_contact", "dropped_out"}),
    ("dropped_out", "active"): frozenset({"returned"}),
    **{
        (start, end): frozenset({reason})
        for start in ("matched", "active", "closing")
        for end, reason in (
            ("closed", "completed"),
            ("withdrawn", "withdrawn"),
            ("dropped_out", "dropped_out"),
        )
        if (start, end) != ("active", "dropped_out")
    },
}
FIRST_CONTACT_REASON: Final[dict[str, str]] = {
    "attended_session": "first_attended_session",
    "feedback": "first_feedback",
}


class MoveRefused(ValueError):
    """A move the phases do not allow; ``rule`` is the code an API error names."""

    def __init__(self, start: str, end: str, reason: str, rule: str) -> None:
        super().__init__(f"An episode that is {start} cannot become {end} ({reason}).")
        self.start, self.end, self.reason, self.rule = start, end, reason, rule


@dataclass(frozen=True)
class PhaseMove:
    start: str
    end: str
    reason: str


def move(start: str, end: str, reason: str) -> PhaseMove:
    """The move from ``start`` to ``end`` for ``reason``, if allowed; else :class:`MoveRefused`
    whose rule is ``already_closed`` (from a closed phase), ``not_active`` (not yet active, or
    no longer) or ``reason`` (a move allowed for other reasons only)."""
    allowed = MOVES.get((start, end))
    if allowed is not None and reason in allowed:
        return PhaseMove(start, end, reason)
    if allowed is not None:
        rule = "reason"
    elif start in CLOSED_PHASES or start in FINAL_PHASES:
        rule = "already_closed"
    else:
        rule = "not_active"
    raise MoveRefused(start, end, reason, rule)


def closed_phase(reason: CloseReason) -> str:
    """The phase an episode closed for ``reason`` is in (``completed`` → ``closed``)."""
    return "closed" if reason == "completed" else reason


def is_closed(phase: str) -> bool:
    return phase in CLOSED_PHASES


def close(phase: str, reason: CloseReason) -> PhaseMove:
    """Staff close the episode for ``reason`` (refused when it is closed already)."""
    return move(phase, closed_phase(reason), reason)


def plan_ending(phase: str) -> PhaseMove:
    """The therapist plans the end of an active episode."""
    return move(phase, "closing", "ending_planned")


def silence_ends(last_contact: datetime, dropout_after_days: int, zone: ZoneInfo) -> datetime:
    """When an active episode silent since ``last_contact`` drops out: the site-local midnight
    beginning the day ``dropout_after_days`` days after the contact's local date (a contact on
    the 3rd at any hour, with 28 days: the 31st at 00:00 site time)."""
    return start_of_day_after(last_contact, dropout_after_days, zone)


@dataclass(frozen=True)
class ContactOutcome:
    """What one contact does to the episode: its last contact, the move (if any) and when the
    episode's silence would end (``None``: nothing to watch in its phase)."""

    last_contact: datetime
    move: PhaseMove | None
    gap_days: int | None
    silence_ends: datetime | None


def after_contact(
    phase: str,
    last_contact: datetime | None,
    contact_at: datetime,
    kind: ContactKind,
    now: datetime,
    dropout_after_days: int,
    zone: ZoneInfo,
) -> ContactOutcome:
    """A contact (an attended session or a feedback response at ``contact_at``) with an episode.

    The last contact is the latest ever seen (a late report of an older session does not move
    it back). ``matched`` becomes ``active``; ``dropped_out`` becomes ``active`` again
    (``returned``, with the site-local days since the last contact before this one) when the
    contact ends the silence as of ``now`` — a late report of a session that was itself followed
    by a full silence leaves the episode dropped out. Other phases keep theirs."""
    latest = contact_at if last_contact is None else max(last_contact, contact_at)
    ends = silence_ends(latest, dropout_after_days, zone)
    step: PhaseMove | None = None
    gap: int | None = None
    if phase == "matched":
        step = move(phase, "active", FIRST_CONTACT_REASON[kind])
    elif phase == "dropped_out" and now < ends:
        step = move(phase, "active", "returned")
        if last_contact is not None:
            gap = max(0, days_between(last_contact, contact_at, zone))
    end_phase = step.end if step is not None else phase
    return ContactOutcome(
        last_contact=latest,
        move=step,
        gap_days=gap,
        silence_ends=ends if end_phase == WATCHED_PHASE else None,
    )


def after_silence(
    phase: str,
    last_contact: datetime | None,
    now: datetime,
    dropout_after_days: int,
    zone: ZoneInfo,
) -> PhaseMove | datetime | None:
    """A due silence check: the drop-out (``no_contact``) when the episode is still active and
    silent as of ``now``; the time to look again when a contact moved the end of its silence
    later; ``None`` when there is nothing to watch (no longer active)."""
    if phase != WATCHED_PHASE or last_contact is None:
        return None
    ends = silence_ends(last_contact, dropout_after_days, zone)
    if now >= ends:
        return move(phase, "dropped_out", "no_contact")
    return ends
