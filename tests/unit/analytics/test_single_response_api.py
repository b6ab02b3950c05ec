"""The service's original single-response functions keep working until the handler moves to
``apply`` (they now name the rule ids of the full rule set)."""

from __future__ import annotations

from decimal import Decimal

from services.analytics.domain import ScoredResponse, low_alliance, risk_alert


def _response(**overrides: object) -> ScoredResponse:
    fields: dict[str, object] = {
        "episode_id": "ep-1",
        "session_number": 2,
        "respondent": "p1_" + "0" * 32,
        "respondent_role": "client",
        "instrument": "srs",
        "instrument_kind": "alliance",
        "total": Decimal("35.9"),
        "concern": True,
    }
    fields.update(overrides)
    return ScoredResponse(**fields)  # type: ignore[arg-type]


def test_risk_alert_opens_for_a_risk_item_above_0() -> None:
    change = risk_alert(_response(instrument="phq-9", risk_items={"9": Decimal(2)}))

    assert change is not None
    assert (change.action, change.kind, change.severity, change.rule) == (
        "open",
        "risk",
        "urgent",
        "rule-1-risk",
    )
    assert change.respondent == "p1_" + "0" * 32
    assert change.inputs == {"instrument": "phq-9", "item_9": 2.0}
    assert risk_alert(_response(risk_items={"9": Decimal(0)})) is None


def test_low_alliance_opens_and_resolves_with_the_concern() -> None:
    opened = low_alliance(_response(), already_open=False)
    resolved = low_alliance(_response(concern=False, total=Decimal(38)), already_open=True)

    assert opened is not None and (opened.action, opened.kind) == ("open", "low_alliance")
    assert resolved is not None and (resolved.action, resolved.suggestion_code) == (
        "resolve",
        "none",
    )
    assert low_alliance(_response(), already_open=True) is None
    assert low_alliance(_response(respondent_role="therapist"), already_open=False) is None
