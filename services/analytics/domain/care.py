"""Who treats an episode, as its timeline tells it: the first confirmed match is its match; a
later one to another therapist is a transfer (a rematch keeps the episode and its history); a
confirmation again to the same therapist (a replayed event) is no change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class CareChange:
    change: Literal["matched", "transferred"]
    therapist_id: str
    from_therapist_id: str | None
    at: datetime


def care_changes(matches: Iterable[tuple[str, datetime]]) -> list[CareChange]:
    """The episode's match and transfers from its confirmed matches (therapist, when)."""
    changes: list[CareChange] = []
    current: str | None = None
    for therapist_id, at in sorted(matches, key=lambda m: m[1]):
        if current is None:
            changes.append(CareChange("matched", therapist_id, None, at))
        elif therapist_id != current:
            changes.append(CareChange("transferred", therapist_id, current, at))
        current = therapist_id
    return changes
