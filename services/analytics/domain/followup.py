"""Recording what was done about an alert: the coded actions (per-site data: these are the
defaults, a site replaces them in the rules file), the reasons a clinician closes one, and the
rule that a risk alert closes only once an action is recorded. The alert's steps and their
order are ``shared.alert_life`` (the same rules notify announces them by)."""

from __future__ import annotations

from services.analytics.rules_config import DEFAULT_ACTION_CODES

__all__ = ["ACTION_BEFORE_CLOSING", "CLOSE_REASONS", "DEFAULT_ACTION_CODES"]

# Why a clinician closes an alert.
CLOSE_REASONS: tuple[str, ...] = (
    "addressed",
    "false_alarm",
    "client_declined",
    "episode_ended",
    "duplicate",
)
# Kinds a clinician may close only once an action is recorded on them.
ACTION_BEFORE_CLOSING: frozenset[str] = frozenset({"risk"})


def unknown_action(code: str, valid: tuple[str, ...]) -> bool:
    return code not in valid


def may_close(kind: str, actions: int) -> bool:
    """A risk alert is closed only once somebody recorded what was done about it."""
    return kind not in ACTION_BEFORE_CLOSING or actions > 0


def action_on_ended_is_conflict(status: str) -> bool:
    """An action on an alert a clinician closed is refused; one on a resolved alert (the
    condition cleared) is recorded."""
    return status == "closed"
