"""Who hears about what, on which channel, now or in a digest (services/notify/domain.py:
route, plan; services/notify/escalation.py: escalation_for). Rule 1 (risk) always reaches the
therapist and the clinical lead at once, whatever the site's policy says (docs/clinical-rules.md,
rule 1)."""

from __future__ import annotations

from services.notify.domain import (
    ContactPoint,
    Intent,
    QuietHours,
    is_urgent,
    plan,
    route,
)
from services.notify.escalation import escalation_for
from services.notify.policy import RiskPolicy, RoutingPolicy, RoutingRule, checked_in_default


def policy(*rules: RoutingRule, risk: RiskPolicy | None = None) -> RoutingPolicy:
    return RoutingPolicy(rules=list(rules), risk=risk or RiskPolicy())


def pairs(intents: tuple[Intent, ...]) -> set[tuple[str, str, str]]:
    return {(i.role, i.channel, i.mode) for i in intents}


# -- route ---------------------------------------------------------------------------------------


def test_risk_goes_to_therapist_and_clinical_lead_immediately_even_with_no_rules() -> None:
    intents = route(policy(risk=RiskPolicy(channels=["email"])), "risk", "urgent")

    assert pairs(intents) == {
        ("therapist", "email", "immediate"),
        ("clinical_lead", "email", "immediate"),
    }
    assert all(i.urgent for i in intents)


def test_risk_is_never_batched_even_when_a_rule_says_digest() -> None:
    digest_rule = RoutingRule(kinds=["risk"], to=["supervisor"], channels=["email"], mode="digest")

    intents = route(policy(digest_rule, risk=RiskPolicy(channels=["sms"])), "risk", "urgent")

    assert ("supervisor", "email", "immediate") in pairs(intents)
    assert not any(i.mode == "digest" for i in intents)


def test_an_urgent_severity_of_another_kind_is_treated_like_risk() -> None:
    assert is_urgent("rupture", "urgent")
    intents = route(policy(risk=RiskPolicy(channels=["webhook"])), "rupture", "urgent")

    assert pairs(intents) == {
        ("therapist", "webhook", "immediate"),
        ("clinical_lead", "webhook", "immediate"),
    }


def test_a_routine_alert_follows_its_rule_to_a_digest() -> None:
    rule = RoutingRule(severities=["routine"], to=["therapist"], channels=["email"], mode="digest")

    intents = route(policy(rule), "low_alliance", "routine")

    assert pairs(intents) == {("therapist", "email", "digest")}
    assert not intents[0].urgent


def test_a_rule_for_other_severities_does_not_match() -> None:
    rule = RoutingRule(severities=["high"], to=["therapist"], channels=["email"])

    assert route(policy(rule), "low_alliance", "routine") == ()


def test_a_rule_for_other_kinds_does_not_match() -> None:
    rule = RoutingRule(kinds=["rupture"], to=["supervisor"], channels=["email"])

    assert route(policy(rule), "low_alliance", "high") == ()
    assert pairs(route(policy(rule), "rupture", "high")) == {("supervisor", "email", "immediate")}


def test_overlapping_rules_send_once_and_immediate_wins_over_digest() -> None:
    digest = RoutingRule(to=["therapist"], channels=["email"], mode="digest")
    immediate = RoutingRule(kinds=["rupture"], to=["therapist"], channels=["email"])

    intents = route(policy(digest, immediate), "rupture", "high")

    assert pairs(intents) == {("therapist", "email", "immediate")}


def test_the_wildcard_does_not_cover_match_notifications() -> None:
    everything = RoutingRule(to=["therapist"], channels=["webhook"])
    matches = RoutingRule(kinds=["match_proposed"], to=["intake_coordinator"], channels=["email"])

    assert route(policy(everything), "match_proposed", "routine") == ()
    assert pairs(route(policy(everything, matches), "match_proposed", "routine")) == {
        ("intake_coordinator", "email", "immediate")
    }


def test_the_checked_in_default_sends_routine_alerts_to_a_digest_and_webhooks_at_once() -> None:
    intents = route(checked_in_default(), "low_alliance", "routine")

    assert pairs(intents) == {
        ("therapist", "webhook", "immediate"),
        ("therapist", "email", "digest"),
    }


def test_the_checked_in_default_tells_the_supervisor_of_an_unresolved_rupture() -> None:
    intents = route(checked_in_default(), "unresolved_rupture", "high")

    assert ("supervisor", "email", "immediate") in pairs(intents)
    assert ("therapist", "email", "immediate") in pairs(intents)


def test_the_checked_in_default_tells_the_intake_coordinator_of_matches_by_email_only() -> None:
    for kind in ("match_proposed", "match_confirmed"):
        assert pairs(route(checked_in_default(), kind, "routine")) == {
            ("intake_coordinator", "email", "immediate")
        }


def test_escalation_goes_to_the_second_contacts_on_the_risk_channels() -> None:
    risk = RiskPolicy(channels=["email", "sms"], escalate_to=["supervisor", "site_admin"])

    escalation = escalation_for(policy(risk=risk), "risk", "urgent")
    assert escalation is not None
    intents = escalation.intents()

    assert pairs(intents) == {
        ("supervisor", "email", "immediate"),
        ("supervisor", "sms", "immediate"),
        ("site_admin", "email", "immediate"),
        ("site_admin", "sms", "immediate"),
    }
    assert all(i.urgent for i in intents)


# -- plan ----------------------------------------------------------------------------------------

THERAPIST = ContactPoint("c-th1", "therapist", "th-1", has_email=True, has_phone=True)
OTHER_THERAPIST = ContactPoint("c-th2", "therapist", "th-2", has_email=True, has_phone=True)
LEAD = ContactPoint("c-lead", "clinical_lead", "lead-1", has_email=True, has_phone=False)
SECOND_LEAD = ContactPoint("c-lead2", "clinical_lead", "lead-2", has_email=True, has_phone=True)
CONTACTS = [THERAPIST, OTHER_THERAPIST, LEAD, SECOND_LEAD]


def test_the_therapist_is_the_episodes_own_therapist_only() -> None:
    planned = plan(
        [Intent("therapist", "email", "immediate", False)],
        therapist_id="th-1",
        contacts=CONTACTS,
        endpoints=[],
    )

    assert [p.recipient for p in planned] == ["staff:therapist:th-1"]
    assert planned[0].endpoint_id == "c-th1"


def test_every_contact_of_another_role_at_the_site_is_reached() -> None:
    planned = plan(
        [Intent("clinical_lead", "email", "immediate", True)],
        therapist_id="th-1",
        contacts=CONTACTS,
        endpoints=[],
    )

    assert sorted(p.recipient for p in planned) == [
        "staff:clinical_lead:lead-1",
        "staff:clinical_lead:lead-2",
    ]


def test_a_person_without_a_phone_gets_no_sms() -> None:
    planned = plan(
        [Intent("clinical_lead", "sms", "immediate", True)],
        therapist_id="th-1",
        contacts=CONTACTS,
        endpoints=[],
    )

    assert [p.recipient for p in planned] == ["staff:clinical_lead:lead-2"]


def test_webhooks_go_once_per_endpoint_naming_every_role() -> None:
    planned = plan(
        [
            Intent("therapist", "webhook", "immediate", True),
            Intent("clinical_lead", "webhook", "immediate", True),
        ],
        therapist_id="th-1",
        contacts=CONTACTS,
        endpoints=["hook-b", "hook-a"],
    )

    assert [(p.recipient, p.roles) for p in planned] == [
        ("endpoint:hook-a", ("clinical_lead", "therapist")),
        ("endpoint:hook-b", ("clinical_lead", "therapist")),
    ]
    assert all(p.urgent and p.channel == "webhook" for p in planned)


def test_no_endpoint_no_webhook() -> None:
    planned = plan(
        [Intent("therapist", "webhook", "immediate", False)],
        therapist_id="th-1",
        contacts=CONTACTS,
        endpoints=[],
    )

    assert planned == []


def test_a_person_reached_by_two_intents_on_one_channel_gets_one_message() -> None:
    both = ContactPoint("c-x", "supervisor", "sup-1", has_email=True, has_phone=False)

    planned = plan(
        [
            Intent("supervisor", "email", "digest", False),
            Intent("supervisor", "email", "immediate", False),
        ],
        therapist_id=None,
        contacts=[both],
        endpoints=[],
    )

    assert [(p.recipient, p.mode) for p in planned] == [("staff:supervisor:sup-1", "immediate")]


def test_planned_messages_carry_the_persons_quiet_hours() -> None:
    quiet = QuietHours.parse("22:00", "07:00", "Europe/Berlin")
    sleeper = ContactPoint("c-s", "therapist", "th-1", has_email=True, has_phone=False, quiet=quiet)

    (planned,) = plan(
        [Intent("therapist", "email", "immediate", False)],
        therapist_id="th-1",
        contacts=[sleeper],
        endpoints=[],
    )

    assert planned.quiet == quiet


def test_recipients_are_named_by_role_and_staff_id_never_by_address() -> None:
    planned = plan(
        route(checked_in_default(), "risk", "urgent"),
        therapist_id="th-1",
        contacts=CONTACTS,
        endpoints=["hook-a"],
    )

    assert all(p.recipient.startswith(("staff:", "endpoint:")) for p in planned)
    assert all("@" not in p.recipient and "+" not in p.recipient for p in planned)
