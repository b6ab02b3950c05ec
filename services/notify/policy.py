"""Routing policies as data: who hears about what, on which channel, and when.

A site's policy is one JSON document validated by :class:`RoutingPolicy`. The defaults are
checked in (``policy_defaults.json``); a deployment may ship its own file
(``RAPPORT_NOTIFY_POLICY_FILE``: ``{"default": {...}, "sites": {"site-a": {...}}}``) and a site
admin may store a site's own policy through the API. The most specific one wins: the site's
stored policy, else the file's entry for the site, else the file's default, else the checked-in
default. Whatever a policy says, rule 1 (``risk``) always reaches the therapist and the clinical
lead at once (docs/clinical-rules.md, rule 1: urgent, to the clinical lead and the therapist at
once, never batched, never held by quiet hours); a policy only chooses its channels and its
escalation.
"""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.alert_life import Step
from shared.contracts import ALERT_KINDS
from shared.vocabulary import one_of

Recipient = Literal["therapist", "supervisor", "clinical_lead", "intake_coordinator", "site_admin"]
Channel = Literal["webhook", "email", "sms"]
Severity = Literal["urgent", "high", "routine"]
Mode = Literal["immediate", "digest"]
InvitedRole = Literal["client", "partner", "family"]
MATCH_KINDS = frozenset({"match_proposed", "match_confirmed"})
if TYPE_CHECKING:
    KindPattern = str
else:  # an enum in the OpenAPI; an unknown kind is refused naming the valid ones
    KindPattern = one_of({"*", *ALERT_KINDS, *MATCH_KINDS}, "alert kind")
InstrumentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]

SEVERITIES: tuple[Severity, ...] = ("urgent", "high", "routine")
DEFAULTS_FILE = Path(__file__).with_name("policy_defaults.json")


def parse_clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
        ) from None
    return value


class RoutingRule(BaseModel):
    """Alerts of these kinds and severities go to these people on these channels."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kinds: list[KindPattern] = Field(default=["*"], min_length=1, max_length=50)
    severities: list[Severity] = Field(default=list(SEVERITIES), min_length=1)
    to: list[Recipient] = Field(min_length=1)
    channels: list[Channel] = Field(min_length=1)
    mode: Mode = "immediate"
    # Which steps of an alert's life these recipients hear about (shared/alert_life.py):
    # openings only by default; the later steps (acknowledged, action_recorded, resolved,
    # closed) go to the rule's webhooks only (front-ends follow an alert; mailboxes do not).
    steps: list[Step] = Field(default=["opened"], min_length=1, max_length=5)

    @model_validator(mode="after")
    def _webhooks_are_immediate(self) -> RoutingRule:
        if self.mode == "digest" and "webhook" in self.channels:
            raise ValueError(
                "channels: webhook deliveries go to the front-end at once; "
                "a digest applies to email and sms only"
            )
        return self

    def matches(self, kind: str, severity: str, step: str = "opened") -> bool:
        """``*`` stands for every alert kind; match notifications are named explicitly."""
        wildcard = "*" in self.kinds and kind not in MATCH_KINDS
        return (
            (wildcard or kind in self.kinds)
            and severity in self.severities
            and (step in self.steps)
        )


class RiskPolicy(BaseModel):
    """Rule 1 (risk): always immediate to the therapist and the clinical lead, ignoring quiet
    hours and digests; escalated when nobody acknowledges it in time."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: list[Channel] = Field(default=["webhook", "email", "sms"], min_length=1)
    escalate_after_seconds: float = Field(default=900, gt=0, le=86_400)
    escalate_to: list[Recipient] = Field(default=["supervisor"], min_length=1)


EscalatedSeverity = Literal["high", "routine"]


class EscalationRule(BaseModel):
    """Alerts of these kinds and severities that nobody acknowledged or acted on (no recorded
    action) within ``after_seconds`` of their opening are told to ``to`` on ``channels``.
    Urgent alerts escalate as ``risk`` says (rule 1), never by a rule. A non-urgent escalation
    waits for the end of its recipient's quiet hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kinds: list[KindPattern] = Field(default=["*"], min_length=1, max_length=50)
    severities: list[EscalatedSeverity] = Field(default=["high", "routine"], min_length=1)
    after_seconds: float = Field(gt=0, le=30 * 86_400)
    to: list[Recipient] = Field(min_length=1)
    channels: list[Channel] = Field(default=["email"], min_length=1)

    @field_validator("kinds")
    @classmethod
    def _alert_kinds_only(cls, value: list[str]) -> list[str]:
        matches = sorted(set(value) & MATCH_KINDS)
        if matches:
            raise ValueError(f"only alerts escalate, not {', '.join(matches)}")
        return value

    def matches(self, kind: str, severity: str) -> bool:
        return (
            ("*" in self.kinds and kind in ALERT_KINDS) or kind in self.kinds
        ) and severity in self.severities


class DigestPolicy(BaseModel):
    """Digest windows start at ``starts_at`` (local time of the site) and last ``period``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    period_seconds: float = Field(default=86_400, ge=1, le=86_400)
    starts_at: ClockTime = "08:00"


class InvitationPolicy(BaseModel):
    """Feedback invitations after a session (``session.completed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    instruments: dict[InvitedRole, list[InstrumentId]] = {
        "client": ["srs", "ors"],
        "partner": ["srs"],
        "family": ["srs"],
    }
    link_ttl_seconds: int = Field(default=7 * 86_400, ge=60, le=90 * 86_400)
    remind_after_seconds: float = Field(default=2 * 86_400, gt=0, le=30 * 86_400)
    # The client rates the support of significant others (``support``) at session 1 and then
    # every this many sessions (0: never).
    support_every_sessions: int = Field(default=4, ge=0, le=52)

    @model_validator(mode="after")
    def _reminder_before_expiry(self) -> InvitationPolicy:
        if self.remind_after_seconds >= self.link_ttl_seconds:
            raise ValueError(
                "remind_after_seconds: the reminder must come before the link expires "
                f"(link_ttl_seconds = {self.link_ttl_seconds})"
            )
        return self


class RateLimit(BaseModel):
    """At most this many routine/high messages per person and channel per hour (urgent ones
    are never held)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_recipient_per_hour: int = Field(default=30, ge=1, le=10_000)


class ResultsPolicy(BaseModel):
    """Scored responses for the front-end (``feedback.recorded``), off by default: with
    ``webhook`` on, every scored response of the site goes to the site's webhooks with its FHIR
    R4 Observations (total and subscales, LOINC-coded), ready to write back to the chart."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    webhook: bool = False


class RoutingPolicy(BaseModel):
    """One site's notification policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Digests' and schedules' time zone; a policy that names none uses its site's
    # (RAPPORT_SITE_TIME_ZONES, else RAPPORT_DEFAULT_TIME_ZONE): see ``in_zone``.
    timezone: str = "UTC"
    rules: list[RoutingRule] = Field(default=[], max_length=100)
    risk: RiskPolicy = RiskPolicy()
    # Escalation of non-urgent alerts nobody followed up (the first matching rule applies).
    escalations: list[EscalationRule] = Field(default=[], max_length=50)
    digest: DigestPolicy = DigestPolicy()
    invitations: InvitationPolicy = InvitationPolicy()
    rate_limit: RateLimit = RateLimit()
    results: ResultsPolicy = ResultsPolicy()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return valid_zone(value)


def in_zone(policy: RoutingPolicy, site_zone: str) -> RoutingPolicy:
    """``policy`` in its site's time zone, unless it names a time zone of its own."""
    if "timezone" in policy.model_fields_set or policy.timezone == site_zone:
        return policy
    return policy.model_copy(update={"timezone": site_zone})


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: RoutingPolicy | None = None
    sites: dict[str, RoutingPolicy] = {}


class PolicyError(Exception):
    """A policy document is malformed; ``str()`` names the file, the field and the rule."""


def describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "(document)"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{field}: {message}"


def load_policy_file(path: str | Path) -> PolicyFile:
    try:
        document: Any = json.loads(Path(path).read_text())
        return PolicyFile.model_validate(document)
    except json.JSONDecodeError as error:
        raise PolicyError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    except ValidationError as error:
        raise PolicyError(f"{path}: {describe(error)}") from None


def checked_in_default() -> RoutingPolicy:
    return RoutingPolicy.model_validate_json(DEFAULTS_FILE.read_text())


class PolicyBook:
    """The configured (not stored) policies: the checked-in default and a deployment's file."""

    def __init__(self, configured: PolicyFile | None = None) -> None:
        configured = configured or PolicyFile()
        self.default = configured.default or checked_in_default()
        self.sites = dict(configured.sites)

    def configured_for(self, site_id: str) -> RoutingPolicy:
        return self.sites.get(site_id, self.default)

    def knows(self, site_id: str) -> bool:
        return site_id in self.sites
