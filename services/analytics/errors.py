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
