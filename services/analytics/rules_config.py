"""Per-site configuration of the alert rules, as data (docs/clinical-rules.md, Alert rules:
every number is a default that a clinic can change for its site through configuration).

Every number a rule uses lives here. Defaults are those of docs/clinical-rules.md; instrument
thresholds default to the instrument definitions (``shared/instrument_definitions``) and can be
overridden per site and instrument. ``RuleConfig.for_site(overrides)`` deep-merges a site's
overrides over the defaults (or over a network-wide ``base``) and validates the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.instruments import Instrument
from shared.site_config import overlay, site_document

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


class InstrumentOverrides(BaseModel):
    """A site's overrides of one instrument's thresholds; ``None`` keeps the definition's."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    concern_total_below: Decimal | None = None
    concern_any_item_below: Decimal | None = None
    reliable_change: Decimal | None = Field(default=None, gt=0)
    clinical_cutoff: Decimal | None = None


class DropoutWeights(BaseModel):
    """Rule 10 points per risk factor (drop-out predictors: low early alliance, Sharf et al.
    2010; unrepaired ruptures, Muran et al. 2009; missed feedback and missed sessions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    early_low_alliance: Decimal = Field(default=Decimal(2), ge=0)
    open_rupture: Decimal = Field(default=Decimal(2), ge=0)
    unresolved_rupture: Decimal = Field(default=Decimal(2), ge=0)
    missed_feedback: Decimal = Field(default=Decimal(1), ge=0)
    missed_session: Decimal = Field(default=Decimal(1), ge=0)
    # Per expected session interval (``session_interval_days``) without contact beyond the
    # first: 21 days since the last contact count 2 (counted by the clock between contacts).
    interval_without_contact: Decimal = Field(default=Decimal(1), ge=0)


@dataclass(frozen=True, slots=True)
class InstrumentThresholds:
    """One instrument's numbers after applying the site's overrides (what the rules read)."""

    instrument: str
    kind: str
    concern_total_below: Decimal | None
    concern_any_item_below: Decimal | None
    reliable_change: Decimal
    # Outcome/symptom instruments: True when a lower score is worse (ORS), False when higher is
    # worse (PHQ-9, GAD-7); None for instruments without a clinical cutoff (alliance).
    lower_is_worse: bool | None
    clinical_cutoff: Decimal | None
    risk_items: tuple[str, ...]
    total_min: Decimal
    total_max: Decimal


class RuleConfig(BaseModel):
    """Every number the alert rules use; defaults are those of docs/clinical-rules.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Per-instrument threshold overrides, keyed by instrument id.
    instruments: dict[str, InstrumentOverrides] = {}
    # Rule 3: low alliance at these sessions is an early drop-out risk.
    early_alliance_sessions: tuple[int, ...] = (1, 2)
    # Rule 5: a rupture opened at session r is unresolved at the first record with session
    # >= r + this, that does not repair it.
    unresolved_rupture_sessions: int = Field(default=3, ge=1)
    # Rule 9: not_on_track is evaluated at the first record with session >= this that is not
    # the respondent's first on the instrument.
    not_on_track_session: int = Field(default=4, ge=1)
    # Rule 9 with an expected-trajectories model (docs/trajectories.md): a client's score worse
    # than this percentile of the model (ORS: below p25; PHQ-9, GAD-7, CORE-10: above p75 for
    # 25) at two consecutive records from session ``trajectory_from_session`` on.
    not_on_track_percentile: Literal[10, 25] = 25
    trajectory_from_session: int = Field(default=3, ge=2)
    trajectory_consecutive_records: int = Field(default=2, ge=1)
    # Rule 11: rematch is considered from this session on ...
    rematch_session: int = Field(default=6, ge=1)
    # ... when low alliance was seen in at least this many sessions (or a rupture is unresolved).
    rematch_low_alliance_sessions: int = Field(default=2, ge=1)
    # Rule 10: points per factor; the alert opens when the score is above the threshold.
    dropout_weights: DropoutWeights = DropoutWeights()
    dropout_threshold: Decimal = Decimal(3)
    # Rule 10: expected days between sessions; a gap of k intervals counts k - 1 missed sessions.
    session_interval_days: int = Field(default=7, ge=1)
    # Attendance: missed_sessions opens when the latest this many sessions with an outcome
    # (cancellations of either kind ignored) were all missed.
    missed_sessions_run: int = Field(default=2, ge=1)
    # Attendance: no_contact opens at the site's midnight that begins the day this many days
    # after the last contact (an attended session or a feedback response).
    no_contact_days: int = Field(default=21, ge=1)
    # Rule 7: which client instrument a therapist instrument is compared with, when the client
    # answered several alliance instruments in the session.
    discrepancy_pairs: dict[str, str] = {"wai-sr-t": "wai-sr"}
    # The coded actions a clinician records on an alert (POST /analytics/alerts/{id}/actions):
    # the defaults of domain.followup, or the site's own list.
    action_codes: tuple[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")], ...
    ] = Field(default=DEFAULT_ACTION_CODES, min_length=1, max_length=50)
    # Rule 12: goals_not_progressing is checked at each client goal rating from this session on
    # (progress on a goal: the instrument's reliable change, 3 points, above its first rating).
    goals_not_progressing_session: int = Field(default=6, ge=1)
    # Rule 13: low_support opens at a client support rating at most this, at these sessions ...
    low_support_at_most: Decimal = Decimal(4)
    low_support_sessions: tuple[int, ...] = (1, 2, 3)
    # ... and resolves at a later rating of at least this.
    support_recovered_at_least: Decimal = Decimal(6)

    @field_validator("early_alliance_sessions", "low_support_sessions")
    @classmethod
    def _positive_sessions(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 1 for s in value):
            raise ValueError("session numbers start at 1")
        return value

    @classmethod
    def for_site(
        cls, overrides: Mapping[str, Any] | None = None, base: RuleConfig | None = None
    ) -> RuleConfig:
        """The defaults (or ``base``, e.g. a network-wide config) with a site's overrides
        deep-merged on top: nested mappings merge key by key, other values replace."""
        start = (base or cls()).model_dump()
        return cls.model_validate(overlay(start, overrides or {}))

    def thresholds(
        self, instrument: Instrument, age_group: str | None = None
    ) -> InstrumentThresholds:
        """The instrument's thresholds with this config's overrides, for a client of
        ``age_group`` (None: the definition's own cutoff); memoised: the config and the
        definition are both frozen."""
        key = (id(self), id(instrument), age_group)
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is self and hit[1] is instrument:
            return hit[2]
        resolved = resolve_thresholds(instrument, self.instruments.get(instrument.id), age_group)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = (self, instrument, resolved)
        return resolved


# (id(config), id(instrument), age group) -> (config, instrument, thresholds); holding both
# objects keeps their ids from being reused while cached. A plain dict: pydantic's private
# attributes are slow to read, and this is read for every record.
_CACHE: dict[tuple[int, int, str | None], tuple[RuleConfig, Instrument, InstrumentThresholds]] = {}
_CACHE_SIZE = 4096


def resolve_thresholds(
    instrument: Instrument,
    overrides: InstrumentOverrides | None = None,
    age_group: str | None = None,
) -> InstrumentThresholds:
    """An instrument definition's thresholds, with a site's overrides where given. The clinical
    cutoff is the site's override if it sets one, else the definition's cutoff for the client's
    ``age_group`` (``clinical.cutoffs_by_age_group``; ORS: adult 25, adolescent 28, child 32),
    else the definition's cutoff (no age group, or one the definition has no cutoff for)."""
    o = overrides or InstrumentOverrides()
    concern = instrument.concern
    clinical = instrument.clinical
    return InstrumentThresholds(
        instrument=instrument.id,
        kind=instrument.kind,
        concern_total_below=(
            o.concern_total_below
            if o.concern_total_below is not None
            else (concern.total_below if concern else None)
        ),
        concern_any_item_below=(
            o.concern_any_item_below
            if o.concern_any_item_below is not None
            else (concern.any_item_below if concern else None)
        ),
        reliable_change=(
            o.reliable_change if o.reliable_change is not None else instrument.reliable_change
        ),
        # The kernel's direction rule (a higher total is better ⇔ a lower one is worse).
        lower_is_worse=instrument.higher_is_better if clinical else None,
        clinical_cutoff=(
            o.clinical_cutoff
            if o.clinical_cutoff is not None
            else (clinical.cutoff_for(age_group) if clinical else None)
        ),
        risk_items=tuple(instrument.risk_items),
        total_min=instrument.total_min,
        total_max=instrument.total_max,
    )


@dataclass(frozen=True)
class SiteRules:
    """The network-wide rule configuration and each site's (overrides merged over it)."""

    default: RuleConfig
    sites: Mapping[str, RuleConfig]

    def for_site(self, site_id: str) -> RuleConfig:
        return self.sites.get(site_id, self.default)


def load_site_configs(path: Path) -> tuple[RuleConfig, dict[str, RuleConfig]]:
    """``{"default": {...}, "sites": {site_id: {...}}}`` → the default and per-site configs."""
    default_overrides, site_overrides = site_document(json.loads(path.read_text(encoding="utf-8")))
    default = RuleConfig.for_site(default_overrides)
    sites = {
        site: RuleConfig.for_site(overrides, base=default)
        for site, overrides in site_overrides.items()
    }
    return default, sites


def site_rules(path: str | None) -> SiteRules:
    if path is None:
        return SiteRules(RuleConfig(), {})
    default, sites = load_site_configs(Path(path))
    return SiteRules(default, sites)
