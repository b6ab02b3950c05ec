"""Routing policies as data (services/notify/policy.py): a malformed policy is refused naming
its field; defaults resolve per site. What messages say (no clinical detail) and who is invited
for feedback."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.notify.domain import invitation_message, invitees, staff_message, support_due
from services.notify.policy import (
    PolicyBook,
    PolicyError,
    RoutingPolicy,
    checked_in_default,
    describe,
    load_policy_file,
)


def error_of(document: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as raised:
        RoutingPolicy.model_validate(document)
    return describe(raised.value)


def test_the_checked_in_default_is_valid() -> None:
    assert checked_in_default().risk.escalate_to == ["supervisor"]


def test_an_unknown_channel_is_refused_naming_the_field() -> None:
    message = error_of({"rules": [{"to": ["therapist"], "channels": ["pager"]}]})

    assert message.startswith("rules.0.channels.0:")


def test_an_unknown_recipient_is_refused_naming_the_field() -> None:
    message = error_of({"rules": [{"to": ["receptionist"], "channels": ["email"]}]})

    assert message.startswith("rules.0.to.0:")


def test_a_digest_of_webhooks_is_refused() -> None:
    message = error_of(
        {"rules": [{"to": ["therapist"], "channels": ["webhook"], "mode": "digest"}]}
    )

    assert message.startswith("rules.0:") and "channels: webhook" in message


def test_an_unknown_time_zone_is_refused() -> None:
    assert error_of({"timezone": "Mars/Olympus"}).startswith("timezone:")


def test_an_unknown_field_is_refused() -> None:
    assert error_of({"rulez": []}).startswith("rulez:")


def test_escalation_after_zero_seconds_is_refused() -> None:
    assert error_of({"risk": {"escalate_after_seconds": 0}}).startswith(
        "risk.escalate_after_seconds:"
    )


def test_a_reminder_after_the_link_expired_is_refused() -> None:
    message = error_of({"invitations": {"link_ttl_seconds": 3600, "remind_after_seconds": 3600}})

    assert "remind_after_seconds" in message


def test_a_risk_policy_without_channels_is_refused() -> None:
    assert error_of({"risk": {"channels": []}}).startswith("risk.channels:")


def test_a_policy_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps({"sites": {"site-a": {"digest": {"period_seconds": 0}}}}))

    with pytest.raises(PolicyError, match=r"policies.json: sites.site-a.digest.period_seconds:"):
        load_policy_file(path)


def test_a_policy_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text("{not json")

    with pytest.raises(PolicyError, match="not JSON"):
        load_policy_file(path)


def test_a_sites_own_configured_policy_wins_over_the_files_default(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(
        json.dumps(
            {"default": {"timezone": "Europe/Berlin"}, "sites": {"site-b": {"timezone": "UTC"}}}
        )
    )
    book = PolicyBook(load_policy_file(path))

    assert book.configured_for("site-b").timezone == "UTC"
    assert book.configured_for("site-x").timezone == "Europe/Berlin"
    assert book.knows("site-b") and not book.knows("site-x")


# -- messages -------------------------------------------------------------------------------------

CLINICAL_WORDS = re.compile(
    r"risk|rupture|suicid|harm|phq|srs|ors|score|depress|anxi|session \d|alliance score",
    re.IGNORECASE,
)


@pytest.mark.parametrize("kind", ["risk", "rupture", "low_alliance", "deterioration"])
@pytest.mark.parametrize("urgent", [True, False])
def test_staff_messages_carry_no_clinical_detail(kind: str, urgent: bool) -> None:
    message = staff_message(kind, urgent)

    assert not CLINICAL_WORDS.search(message.subject + " " + message.text)
    assert "open your record system" in message.text


def test_a_routine_alert_reads_as_the_issue_says() -> None:
    assert (
        staff_message("low_alliance", False).text
        == "You have a new alliance alert for a client — open your record system."
    )


def test_a_digest_says_how_many_and_nothing_else() -> None:
    message = staff_message("digest", False, count=3)

    assert "3 new alliance alerts" in message.text
    assert not CLINICAL_WORDS.search(message.text)


def test_an_invitation_carries_the_link_and_no_clinical_detail() -> None:
    message = invitation_message(
        "https://r.example/feedback/r/abc", datetime(2025, 6, 8, tzinfo=UTC), reminder=False
    )

    assert "https://r.example/feedback/r/abc" in message.text
    assert "08 June 2025" in message.text
    assert not CLINICAL_WORDS.search(message.subject + message.text)


def test_a_reminder_says_it_is_one() -> None:
    message = invitation_message("L", datetime(2025, 6, 8, tzinfo=UTC), reminder=True)

    assert "reminder" in message.subject.lower()


# -- who is invited -----------------------------------------------------------------------------

BY_ROLE = {"client": ["srs", "ors"], "partner": ["srs"], "family": ["srs"]}


def test_the_client_gets_srs_and_ors_and_a_partner_srs() -> None:
    got = invitees([("p1_c", "client"), ("p1_p", "partner")], BY_ROLE)

    assert [(i.respondent, i.role, i.instruments) for i in got] == [
        ("p1_c", "client", ("srs", "ors")),
        ("p1_p", "partner", ("srs",)),
    ]


def test_a_role_without_instruments_is_not_invited() -> None:
    got = invitees([("p1_c", "client"), ("p1_t", "therapist")], BY_ROLE)

    assert [i.respondent for i in got] == ["p1_c"]


def test_a_member_listed_twice_is_invited_once() -> None:
    got = invitees([("p1_c", "client"), ("p1_c", "client")], BY_ROLE)

    assert len(got) == 1


# -- support of significant others (issue 19) ------------------------------------------------


@pytest.mark.parametrize(
    ("session", "every", "due"),
    [
        (1, 4, True),
        (2, 4, False),
        (4, 4, False),
        (5, 4, True),
        (9, 4, True),
        (1, 1, True),
        (2, 1, True),
        (1, 0, False),
        (5, 0, False),
        (3, 2, True),
        (4, 2, False),
    ],
)
def test_support_is_asked_at_session_1_and_then_every_few_sessions(
    session: int, every: int, due: bool
) -> None:
    assert support_due(session, every) is due


def test_when_support_is_due_only_the_client_is_asked_for_it() -> None:
    got = invitees([("p1_c", "client"), ("p1_p", "partner")], BY_ROLE, support=True)

    assert [(i.role, i.instruments) for i in got] == [
        ("client", ("srs", "ors", "support")),
        ("partner", ("srs",)),
    ]


def test_a_sites_policy_sets_how_often_support_is_asked_and_refuses_a_negative_period() -> None:
    assert RoutingPolicy().invitations.support_every_sessions == 4
    policy = RoutingPolicy.model_validate({"invitations": {"support_every_sessions": 2}})
    assert policy.invitations.support_every_sessions == 2
    with pytest.raises(ValidationError, match="support_every_sessions"):
        RoutingPolicy.model_validate({"invitations": {"support_every_sessions": -1}})
