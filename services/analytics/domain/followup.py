"""Recording what was done about an alert: the coded actions (per-site data: these are the
defaults, a site replaces them in the rules file), the reasons a clinician closes one, and the
rule that a risk alert closes only once an action is recorded. The alert's steps and their
order are ``shared.alert_life`` (the same rules notify announces them by)."""

from __future__ import annotations

# What a clinician did about an alert (docs/clinical-rules.md, Follow-up): the defaults; a site
# may replace the list in the rules file (``action_codes``).
DEFAULT_ACTION_CODES: tuple[str, ...] = (
    "discussed_in_session",
    "changed_approach",
    "adjusted_goals",
    "involved_significant_other",
    "safety_plan",
    "referred",
    "offered_rematch",
    "no_action_needed_false_alarm",
)
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
