"""The four Rapport services: intake, feedback, analytics, notify."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import ServiceDefinition

NAMES = ("intake", "feedback", "analytics", "notify")


def definitions(names: tuple[str, ...] | list[str] = NAMES) -> list[ServiceDefinition]:
    """Fresh definitions of the named services (each call builds new ones)."""
    from services.analytics.app import definition as analytics
    from services.feedback.app import definition as feedback
    from services.intake.app import definition as intake
    from services.notify.app import definition as notify

    factories = {"intake": intake, "feedback": feedback, "analytics": analytics, "notify": notify}
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; one of {', '.join(NAMES)}")
    return [factories[n]() for n in names]
