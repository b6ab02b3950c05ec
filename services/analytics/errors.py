"""Analytics' refusals, each a kind of the kernel's domain errors (``shared.errors``) with the
title its problem+json answers with. Use cases raise them; only the HTTP layer turns them into
responses, and a subscriber into a rejected event."""

from __future__ import annotations

from shared.errors import Conflict, Invalid, NotFound


class EpisodeNotFound(NotFound):
    title = "Episode not found"

    def __init__(self, episode_id: str) -> None:
        super().__init__(f"No episode {episode_id!r} that you may see.")


class AlertNotFound(NotFound):
    title = "Alert not found"

    def __init__(self, alert_id: str) -> None:
        super().__init__(
            f"No alert {alert_id!r} that you may see.",
            errors=[{"field": "alert_id", "rule": "not_found"}],
        )


class AlertNotAcknowledgeable(Conflict):
    """Only a risk alert stays open until a clinician acknowledges it."""

    title = "Alert not acknowledged by staff"

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"A {kind} alert closes when its rule no longer holds; only a risk alert "
            "stays open until a clinician acknowledges it.",
            errors=[{"field": "alert_id", "rule": "not_acknowledgeable"}],
        )


class AlertAlreadyClosed(Conflict):
    title = "Alert already closed"

    def __init__(self, status: str) -> None:
        super().__init__(
            f"This alert is {status} and was not acknowledged; there is nothing to acknowledge.",
            errors=[{"field": "alert_id", "rule": "already_closed"}],
        )


class UnknownInstrument(Invalid):
    """A scored response names an instrument this deployment has no definition of."""

    title = "Unknown instrument"

    def __init__(self, instrument: str) -> None:
        super().__init__(f"unknown instrument {instrument!r}")


class AlertClosed(Conflict):
    """A clinician closed the alert: nothing more is recorded on it."""

    title = "Alert closed"

    def __init__(self) -> None:
        super().__init__(
            "This alert was closed by a clinician; no action can be recorded on it or close it "
            "again.",
            errors=[{"field": "alert_id", "rule": "closed"}],
        )


class UnknownAction(Invalid):
    title = "Unknown action"

    def __init__(self, code: str, valid: tuple[str, ...]) -> None:
        super().__init__(
            f"code: {code!r} is not an action of this site; one of: {', '.join(valid)}.",
            errors=[{"field": "code", "rule": "one_of", "allowed": list(valid)}],
        )


class ActionRequiredBeforeClosing(Conflict):
    title = "Action required before closing"

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"A {kind} alert is closed only once an action is recorded on it "
            "(POST /analytics/alerts/{alert_id}/actions).",
            errors=[{"field": "alert_id", "rule": "action_required"}],
        )


class IdempotencyKeyReused(Conflict):
    title = "Idempotency-Key reused"

    def __init__(self) -> None:
        super().__init__(
            "Idempotency-Key: this key was used on this alert for another action; a retry must "
            "ask the same thing.",
            errors=[{"field": "Idempotency-Key", "rule": "reused"}],
        )
