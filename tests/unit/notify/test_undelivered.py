"""Notices no channel of their site can carry (services/notify/undelivered.py): why one is
undeliverable, who is told (urgent only; the site's address before ops; only with email), the
readiness warning, and when a site's waiting notices are looked at again — at each boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notify.domain import ContactPoint, plan, route
from services.notify.policy import checked_in_default
from services.notify.undelivered import (
    COMMIT_GRACE,
    NO_CHANNEL,
    RECHECK_AFTER,
    SITE_NOT_SET_UP,
    Looked,
    fallback_for,
    fallback_message,
    look_again,
    readiness_warning,
    routing_fingerprint,
    undeliverable_reason,
)

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CLINICAL = ("rupture", "risk", "phq", "srs", "suicid", "harm", "p1_", "ep-")


# -- why a notice is undeliverable ---------------------------------------------------------------


def test_a_risk_for_a_site_with_no_webhook_and_no_contact_plans_nothing() -> None:
    intents = route(checked_in_default(), "risk", "urgent")

    planned = plan(intents, therapist_id="th-1", contacts=[], endpoints=[])

    assert planned == []
    assert undeliverable_reason(len(planned), site_set_up=False) == SITE_NOT_SET_UP


def test_one_endpoint_is_enough_for_a_risk_to_be_deliverable() -> None:
    intents = route(checked_in_default(), "risk", "urgent")

    planned = plan(intents, therapist_id="th-1", contacts=[], endpoints=["hook-1"])

    assert len(planned) == 1
    assert undeliverable_reason(len(planned), site_set_up=True) is None


def test_a_set_up_site_whose_contacts_do_not_reach_the_recipients_has_no_channel() -> None:
    admin_only = ContactPoint("c-1", "site_admin", "adm-1", has_email=True, has_phone=False)
    intents = route(checked_in_default(), "risk", "urgent")

    planned = plan(intents, therapist_id="th-1", contacts=[admin_only], endpoints=[])

    assert undeliverable_reason(len(planned), site_set_up=True) == NO_CHANNEL


@pytest.mark.parametrize(("planned", "reason"), [(0, NO_CHANNEL), (1, None), (2, None)])
def test_the_reason_is_given_only_when_nothing_was_planned(
    planned: int, reason: str | None
) -> None:
    assert undeliverable_reason(planned, site_set_up=True) == reason


# -- who is told ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site_address", "ops_address", "told"),
    [(True, True, "site"), (True, False, "site"), (False, True, "ops"), (False, False, None)],
)
def test_an_urgent_notice_goes_to_the_sites_fallback_before_ops(
    site_address: bool, ops_address: bool, told: str | None
) -> None:
    assert (
        fallback_for(
            "risk", "urgent", site_address=site_address, ops_address=ops_address, email=True
        )
        == told
    )


def test_without_email_no_fallback_can_be_told() -> None:
    assert fallback_for("risk", "urgent", site_address=True, ops_address=True, email=False) is None


@pytest.mark.parametrize(
    ("kind", "severity", "told"),
    [
        ("risk", "high", "ops"),  # rule 1 is urgent by its kind
        ("deterioration", "urgent", "ops"),  # anything analytics marks urgent
        ("rupture", "high", None),
        ("match_proposed", "routine", None),
    ],
)
def test_only_urgent_notices_go_to_a_fallback(kind: str, severity: str, told: str | None) -> None:
    assert fallback_for(kind, severity, site_address=False, ops_address=True, email=True) == told


def test_the_fallback_message_names_the_site_and_no_clinical_detail() -> None:
    message = fallback_message("site-north")

    assert "site-north" in message.text and "URGENT" in message.subject
    assert "GET /notify/undelivered" in message.text
    assert not any(word in (message.subject + message.text).lower() for word in CLINICAL)


# -- readiness -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waiting", "warning"),
    [
        (-1, None),
        (0, None),
        (1, "1 urgent notice waits for a channel"),
        (2, "2 urgent notices wait for a channel"),
    ],
)
def test_the_readiness_warning_counts_waiting_urgent_notices(
    waiting: int, warning: str | None
) -> None:
    found = readiness_warning(waiting)

    if warning is None:
        assert found is None
    else:
        assert found is not None and found.startswith(warning)


# -- when to look again --------------------------------------------------------------------------


def test_a_site_never_looked_at_is_looked_at() -> None:
    assert look_again(None, "f", NOW - timedelta(days=1), NOW)


def test_a_changed_routing_is_looked_at_at_once() -> None:
    last = Looked("before", NOW - timedelta(seconds=1))

    assert look_again(last, "after", NOW - timedelta(days=1), NOW)


def test_a_notice_recorded_within_the_grace_before_the_last_look_is_looked_at() -> None:
    last = Looked("f", NOW - timedelta(seconds=1))

    assert look_again(last, "f", last.at - COMMIT_GRACE, NOW)
    assert not look_again(last, "f", last.at - COMMIT_GRACE - timedelta(microseconds=1), NOW)


def test_an_unchanged_site_is_looked_at_again_after_the_recheck_interval() -> None:
    old = NOW - timedelta(days=1)

    assert look_again(Looked("f", NOW - RECHECK_AFTER), "f", old, NOW)
    assert not look_again(
        Looked("f", NOW - RECHECK_AFTER + timedelta(microseconds=1)), "f", old, NOW
    )


def test_the_fingerprint_changes_with_what_decides_delivery_only() -> None:
    policy = checked_in_default().model_dump_json()
    lead = ContactPoint("c-1", "clinical_lead", "lead-1", has_email=True, has_phone=False)
    base = routing_fingerprint(policy, [], ["b", "a"], site_fallback=False)

    assert base == routing_fingerprint(policy, [], ["a", "b"], site_fallback=False)
    assert base != routing_fingerprint(policy, [], ["a", "b", "c"], site_fallback=False)
    assert base != routing_fingerprint(policy, [lead], ["a", "b"], site_fallback=False)
    assert base != routing_fingerprint(policy, [], ["a", "b"], site_fallback=True)
    assert base != routing_fingerprint(policy + " ", [], ["a", "b"], site_fallback=False)
