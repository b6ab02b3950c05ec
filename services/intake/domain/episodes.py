"""An episode's lifecycle as intake keeps it (docs/clinical-rules.md, Episodes and their phases).

An episode opens in phase ``matched`` (from a confirmed match, or directly with a chosen
therapist) and stays there while it is open: a confirmed rematch transfers it to another
therapist in place (same id, same phase; ``episode.transferred`` says so). Staff close it with a
reason; the reason decides the closed phase. Erasure deletes the episode's row, so ``erased`` is
never a stored phase.
"""

from __future__ import annotations

from typing import Final, Literal

CloseReason = Literal["completed", "dropped_out", "withdrawn"]

OPEN_PHASE: Final = "matched"
# The phases of a closed episode: not closed, rematched or freeing a place again.
CLOSED_PHASES: Final = frozenset({"closed", "dropped_out", "withdrawn"})


def closed_phase(reason: CloseReason) -> str:
    """The phase an episode closed for ``reason`` is in (``completed`` → ``closed``)."""
    return "closed" if reason == "completed" else reason


def is_closed(phase: str) -> bool:
    return phase in CLOSED_PHASES
