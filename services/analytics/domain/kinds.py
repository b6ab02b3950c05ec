"""The alerts the rules raise: their kinds, severities, rule ids, plain names and suggestions
for the clinician (docs/clinical-rules.md, "Alert rules"), and the shapes of an alert's key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

Severity = Literal["urgent", "high", "routine"]
Action = Literal["open", "resolve"]
InputValue = float | int | str | bool | None
AlertKey = tuple[str, str | None, str | None]
AlertIdentity = tuple[str, str | None, str | None, int]

RISK: Final = "risk"
LOW_ALLIANCE: Final = "low_alliance"
EARLY_ALLIANCE_RISK: Final = "early_alliance_risk"
RUPTURE: Final = "rupture"
REPAIR: Final = "repair"
UNRESOLVED_RUPTURE: Final = "unresolved_rupture"
SPLIT_ALLIANCE: Final = "split_alliance"
RATING_DISCREPANCY: Final = "rating_discrepancy"
DETERIORATION: Final = "deterioration"
NOT_ON_TRACK: Final = "not_on_track"
DROPOUT_RISK: Final = "dropout_risk"
REMATCH_SUGGESTED: Final = "rematch_suggested"
GOALS_NOT_PROGRESSING: Final = "goals_not_progressing"
LOW_SUPPORT: Final = "low_support"
MISSED_SESSIONS: Final = "missed_sessions"
NO_CONTACT: Final = "no_contact"

KINDS: Final[tuple[str, ...]] = (
    RISK,
    LOW_ALLIANCE,
    EARLY_ALLIANCE_RISK,
    RUPTURE,
    REPAIR,
    UNRESOLVED_RUPTURE,
    SPLIT_ALLIANCE,
    RATING_DISCREPANCY,
    DETERIORATION,
    NOT_ON_TRACK,
    DROPOUT_RISK,
    REMATCH_SUGGESTED,
    GOALS_NOT_PROGRESSING,
    LOW_SUPPORT,
    MISSED_SESSIONS,
    NO_CONTACT,
)

# docs/clinical-rules.md: urgent for risk; high for rupture, unresolved_rupture,
# early_alliance_risk, deterioration, rematch_suggested; routine otherwise (goals_not_progressing
# and low_support among them).
SEVERITY: Final[dict[str, Severity]] = {
    RISK: "urgent",
    LOW_ALLIANCE: "routine",
    EARLY_ALLIANCE_RISK: "high",
    RUPTURE: "high",
    REPAIR: "routine",
    UNRESOLVED_RUPTURE: "high",
    SPLIT_ALLIANCE: "routine",
    RATING_DISCREPANCY: "routine",
    DETERIORATION: "high",
    NOT_ON_TRACK: "routine",
    DROPOUT_RISK: "routine",
    REMATCH_SUGGESTED: "high",
    GOALS_NOT_PROGRESSING: "routine",
    LOW_SUPPORT: "routine",
    MISSED_SESSIONS: "routine",
    NO_CONTACT: "high",
}

RULE_IDS: Final[dict[str, str]] = {
    RISK: "rule-1-risk",
    LOW_ALLIANCE: "rule-2-low-alliance",
    EARLY_ALLIANCE_RISK: "rule-3-early-alliance-risk",
    RUPTURE: "rule-4-rupture",
    REPAIR: "rule-5-repair",
    UNRESOLVED_RUPTURE: "rule-5-unresolved-rupture",
    SPLIT_ALLIANCE: "rule-6-split-alliance",
    RATING_DISCREPANCY: "rule-7-rating-discrepancy",
    DETERIORATION: "rule-8-deterioration",
    NOT_ON_TRACK: "rule-9-not-on-track",
    DROPOUT_RISK: "rule-10-dropout-risk",
    REMATCH_SUGGESTED: "rule-11-rematch-suggested",
    GOALS_NOT_PROGRESSING: "rule-12-goals-not-progressing",
    LOW_SUPPORT: "rule-13-low-support",
    MISSED_SESSIONS: "rule-14-missed-sessions",
    NO_CONTACT: "rule-15-no-contact",
}

# What a clinic manager reads for each kind (reports, chart legends).
NAMES: Final[dict[str, str]] = {
    RISK: "Risk (self-harm item)",
    LOW_ALLIANCE: "Low alliance",
    EARLY_ALLIANCE_RISK: "Low alliance early on",
    RUPTURE: "Rupture",
    REPAIR: "Rupture repaired",
    UNRESOLVED_RUPTURE: "Rupture not repaired",
    SPLIT_ALLIANCE: "Split alliance (family members disagree)",
    RATING_DISCREPANCY: "Therapist rates the alliance higher",
    DETERIORATION: "Deterioration",
    NOT_ON_TRACK: "Not on track",
    DROPOUT_RISK: "Drop-out risk",
    REMATCH_SUGGESTED: "Rematch suggested",
    GOALS_NOT_PROGRESSING: "Goals not progressing",
    LOW_SUPPORT: "Little support from the people around the client",
    MISSED_SESSIONS: "Missed sessions",
    NO_CONTACT: "No contact",
}


def plain_name(kind: str) -> str:
    """The kind as people read it (a kind this version does not know: its code in words)."""
    return NAMES.get(kind) or kind.replace("_", " ").capitalize()


def by_urgency(kinds: Iterable[str]) -> list[str]:
    """Kinds in the order people read them: risk first, as :data:`KINDS` lists them."""
    return sorted(kinds, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))


SUGGESTIONS: Final[dict[str, tuple[str, str]]] = {
    RISK: (
        "contact_client_now_and_assess_risk",
        "A risk item was answered above 0: contact the client now and assess safety.",
    ),
    LOW_ALLIANCE: (
        "invite_feedback_on_the_relationship_next_session",
        "Alliance in the concern range: ask for feedback on the relationship next session.",
    ),
    EARLY_ALLIANCE_RISK: (
        "relationship_conversation_next_session",
        "Low alliance this early predicts drop-out: invite a relationship conversation at the "
        "next session.",
    ),
    RUPTURE: (
        "acknowledge_and_explore_rupture",
        "Alliance dropped by at least the reliable change: acknowledge the possible rupture "
        "and explore it with the client.",
    ),
    REPAIR: (
        "rupture_repaired",
        "Alliance is back within reliable change of its pre-rupture baseline: rupture repaired.",
    ),
    UNRESOLVED_RUPTURE: (
        "review_rupture_with_supervisor",
        "A rupture has not been repaired within the expected sessions: review it with your "
        "supervisor.",
    ),
    SPLIT_ALLIANCE: (
        "address_split_alliance",
        "Family members rate the alliance very differently: check goals and tasks with each.",
    ),
    RATING_DISCREPANCY: (
        "ask_client_about_the_relationship",
        "Your alliance rating is well above the client's: ask the client about the relationship.",
    ),
    DETERIORATION: (
        "review_treatment_plan_and_risk",
        "Outcome is reliably worse than at the start: review the treatment plan and risk.",
    ),
    NOT_ON_TRACK: (
        "review_progress_with_client",
        "Started in the clinical range and not reliably improved: review goals and approach "
        "with the client.",
    ),
    DROPOUT_RISK: (
        "reach_out_to_prevent_dropout",
        "Several drop-out risk factors: reach out to the client and discuss continuing.",
    ),
    REMATCH_SUGGESTED: (
        "offer_different_therapist",
        "Persistently low alliance without improvement: offer the client a different therapist.",
    ),
    GOALS_NOT_PROGRESSING: (
        "review_goals_with_client",
        "No goal of the client's has moved reliably since it was first rated: review the goals "
        "with the client (are they still the right ones, and is the work aimed at them?).",
    ),
    LOW_SUPPORT: (
        "discuss_people_around_the_client",
        "The client feels little support for the therapy from the people around them: discuss "
        "who matters to them and how they see the therapy, and, with the client's consent, "
        "consider inviting one of them to a session.",
    ),
    MISSED_SESSIONS: (
        "reach_out_about_missed_sessions",
        "The client missed their last two sessions without cancelling: reach out, ask what "
        "got in the way and whether the time or the format still suits them.",
    ),
    NO_CONTACT: (
        "contact_client_about_continuing",
        "No session attended and no feedback for three weeks: contact the client, ask how they "
        "are and whether they want to continue.",
    ),
}

ONE_SHOT: Final = frozenset({RISK, REPAIR})
# Alerts about attendance and time (domain.attendance), not about any questionnaire answer: a
# late record's rebuild of the episode keeps them as they are.
ATTENDANCE_KINDS: Final = frozenset({MISSED_SESSIONS, NO_CONTACT})
# Events that stay open until a clinician acknowledges them (nothing in the rules closes them).
UNTIL_ACKNOWLEDGED: Final = frozenset({RISK})
