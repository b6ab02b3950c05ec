"""The episode lifecycle as intake keeps it: one set of closed phases for closing, rematch,
transfer and erasure."""

from __future__ import annotations

from typing import get_args

import pytest

from services.intake.domain.episodes import (
    CLOSED_PHASES,
    OPEN_PHASE,
    CloseReason,
    closed_phase,
    is_closed,
)
from services.intake.mapping import CloseIn


@pytest.mark.parametrize(
    ("reason", "phase"),
    [("completed", "closed"), ("dropped_out", "dropped_out"), ("withdrawn", "withdrawn")],
)
def test_each_close_reason_leaves_the_episode_in_a_closed_phase(reason: str, phase: str) -> None:
    assert closed_phase(reason) == phase  # type: ignore[arg-type]
    assert is_closed(phase)


def test_the_closed_phases_are_exactly_those_a_close_can_produce() -> None:
    assert {closed_phase(reason) for reason in get_args(CloseReason)} == CLOSED_PHASES


def test_the_route_accepts_exactly_the_close_reasons() -> None:
    assert set(get_args(CloseIn.model_fields["reason"].annotation)) == set(get_args(CloseReason))


@pytest.mark.parametrize("phase", [OPEN_PHASE, "transferred"])
def test_an_open_or_transferred_episode_is_not_closed(phase: str) -> None:
    # A confirmed rematch transfers the episode in place: it stays open with its new therapist.
    assert not is_closed(phase)
