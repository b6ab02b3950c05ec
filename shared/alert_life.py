"""An alert's life, as pure rules shared by the service that records it (analytics) and the
one that announces it (notify): opened → acknowledged (seen: its first delivery acknowledged)
→ action_recorded (what a clinician did) → resolved (its rule no longer holds) or closed (by a
clinician, with a reason). These are the statuses of ``alliance.alert``. Each step is announced
once, in this order; an alert that ended never opens again, whatever arrives after it (a
replay, an event reordered across partitions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Step = Literal["opened", "acknowledged", "action_recorded", "resolved", "closed"]
STEPS: tuple[Step, ...] = ("opened", "acknowledged", "action_recorded", "resolved", "closed")
ENDINGS: frozenset[str] = frozenset({"resolved", "closed"})


@dataclass(frozen=True, slots=True)
class AlertLife:
    """Where an alert is in its follow-up: what has been announced so far."""

    announced: frozenset[str] = frozenset()
    actions: int = 0

    @property
    def ended(self) -> bool:
        return bool(self.announced & ENDINGS)

    @property
    def position(self) -> int:
        """How far the alert's life has gone: grows with every step taken (each first step,
        each further action), so a step's deliveries can wait for those of earlier steps."""
        return len(self.announced) + max(self.actions - 1, 0)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a step is announced, and the alert's life after it."""

    announce: bool
    life: AlertLife


def take(life: AlertLife, step: Step) -> Decision:
    """The alert's life after ``step`` arrives, and whether the step is announced.

    - every step is announced at most once, an action once per recorded action;
    - nothing is announced after the alert ended except an action recorded afterwards (what
      was done is worth knowing even once the condition cleared): an opening that arrives
      after its resolution never reopens it, a second ending is ignored;
    - ``acknowledged`` (seen) after an action is recorded but not announced (acting implies
      having seen it)."""
    if step == "action_recorded":
        return Decision(True, AlertLife(life.announced | {step}, life.actions + 1))
    if step in life.announced or life.ended:
        return Decision(False, life)
    if step == "acknowledged" and "action_recorded" in life.announced:
        return Decision(False, AlertLife(life.announced | {step}, life.actions))
    return Decision(True, AlertLife(life.announced | {step}, life.actions))


def replay(steps: list[Step]) -> tuple[list[Step], AlertLife]:
    """The steps announced, in order, when these arrive one after another."""
    life = AlertLife()
    announced: list[Step] = []
    for step in steps:
        decision = take(life, step)
        if decision.announce:
            announced.append(step)
        life = decision.life
    return announced, life
