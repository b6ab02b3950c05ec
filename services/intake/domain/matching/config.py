"""Matching vocabularies and per-site matching weights, as data (docs/clinical-rules.md,
Matching; issue 3: "weights per site in configuration").

Two things live here because both are data the API validates against and the matching engine
reads:

* the controlled vocabularies (problem domains, modalities, competence scopes, languages,
  genders, formats …) as frozen sets of codes, so the HTTP edge can reject an unknown code with
  a 422 naming the field before anything reaches the engine;
* :class:`MatchingConfig`, every number the engine uses (score weights, severity weights, the
  effectiveness scale, session length, wait horizon, how many options, the cost of relaxing each
  hard constraint when nothing fits). ``MatchingConfig.for_site(overrides)`` deep-merges a site's
  overrides over the defaults (or over a network-wide ``base``) and validates the result; a bad
  value raises ``pydantic.ValidationError`` whose ``loc`` names the field
  (e.g. ``("weights", "effectiveness")``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.site_config import overlay, site_document

# --- Controlled vocabularies ------------------------------------------------------------------

# Problem domains: the twelve of the Treatment Outcome Package that the Match trial profiled
# therapists on (Constantino et al. 2021), plus the domains clinics commonly triage on.
PROBLEM_DOMAINS: Final = frozenset(
    {
        # Treatment Outcome Package domains
        "depression",
        "anxiety",
        "mania",
        "psychosis",
        "substance_use",
        "social_conflict",
        "sexual_functioning",
        "sleep",
        "suicidality",
        "violence",
        "work_functioning",
        "quality_of_life",
        # common intake domains
        "trauma",
        "eating",
        "grief",
        "relationship",
        "family_conflict",
        "ocd",
        "self_harm",
        "personality",
        "neurodevelopmental",
    }
)

MODALITIES: Final = frozenset(
    {
        "cbt",
        "act",
        "dbt",
        "emdr",
        "cpt",  # cognitive processing therapy
        "pe",  # prolonged exposure
        "psychodynamic",
        "person_centred",
        "emotion_focused",
        "compassion_focused",
        "schema",
        "ipt",  # interpersonal psychotherapy
        "mbct",
        "mentalization",
        "solution_focused",
        "motivational_interviewing",
        "systemic",
        "family_based_treatment",
        "gottman",
        "integrative",
        "play_therapy",
        "art_therapy",
    }
)

COMPETENCE_SCOPES: Final = frozenset(
    {
        "adults",
        "older_adults",
        "children_adolescents",
        "couples",
        "family",
        "trauma",
        "eating_disorders",
        "substance_use",
        "psychosis",
        "personality_disorders",
        "perinatal",
        "neurodevelopmental",
    }
)

# ISO 639-1 two-letter codes, plus ISO 639-3 codes of common sign languages (which have no
# two-letter code): therapy in a sign language is a language match like any other.
_ISO_639_1 = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv "
    "cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr "
    "ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw "
    "ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv "
    "ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr "
    "ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi "
    "yo za zh zu"
)
_SIGN_LANGUAGES = "ase bfi asf fsl gsg sgg ise ssp swl dse nsl fse csl jsl kvk ins"
LANGUAGES: Final = frozenset(_ISO_639_1.split()) | frozenset(_SIGN_LANGUAGES.split())

GENDERS: Final = frozenset({"woman", "man", "non_binary"})
# Why a client declined a proposal (``match.declined``'s ``reason_code``).
DECLINE_REASONS: Final = frozenset(
    {
        "client_preference",  # would rather see someone else (no reason given)
        "schedule",  # the session times do not suit
        "location",  # the site or the format does not suit
        "language",
        "therapist_characteristics",  # gender, culture/faith, modality, experience
        "wait_too_long",
        "no_longer_seeking",  # the client no longer wants therapy now
        "other",
    }
)
FORMATS: Final = frozenset({"in_person", "telehealth"})
SEVERITIES: Final = ("mild", "moderate", "severe")
AGE_GROUPS: Final = frozenset({"child", "adolescent", "adult", "older_adult"})
UNITS: Final = frozenset({"individual", "couple", "family"})
STRENGTHS: Final = frozenset({"required", "preferred"})
CLASSIFICATIONS: Final = frozenset({"effective", "neutral", "ineffective", "not_enough_data"})

# Cultural/faith background tags are self-declared and open-ended (a clinic's community decides
# its own words); they are codes (lower-case, no free text) but not a closed set.

# Which competence scope a client's age group or unit requires.
AGE_GROUP_SCOPES: Final[Mapping[str, str]] = {
    "child": "children_adolescents",
    "adolescent": "children_adolescents",
    "adult": "adults",
    "older_adult": "adults",
}
UNIT_SCOPES: Final[Mapping[str, str]] = {"couple": "couples", "family": "family"}


# --- Configuration ----------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchWeights(_Frozen):
    """Points each score part can contribute at full credit. Every part is a fraction in
    [0, 1] (effectiveness in [-1, 1] times the severity weight) times its weight, so the weights
    are directly comparable: "a met gender preference is worth as much as the whole caseload
    balance part"."""

    # Problem-domain effectiveness (Match trial): per domain, the shrunken estimate's distance
    # from the network reference, scaled by ``effectiveness_full_scale`` and by severity.
    effectiveness: float = Field(default=3.0, ge=0)
    # The therapist lists the client's problem domains among their specialties.
    specialty: float = Field(default=1.0, ge=0)
    # Each stated *preferred* (soft) preference that the therapist meets.
    gender: float = Field(default=1.0, ge=0)
    language: float = Field(default=1.0, ge=0)
    culture_faith: float = Field(default=1.0, ge=0)
    modality: float = Field(default=0.75, ge=0)
    format: float = Field(default=0.75, ge=0)
    site: float = Field(default=0.5, ge=0)
    time: float = Field(default=0.75, ge=0)
    # Years of experience, for complex cases only (severe, risk, difficult past relationships).
    experience: float = Field(default=1.5, ge=0)
    # Earliest common session: full credit now, none at ``wait_horizon_days``.
    wait: float = Field(default=1.0, ge=0)
    # Share of the therapist's capacity still free (spreads new clients across the team).
    caseload: float = Field(default=0.5, ge=0)


class SeverityWeights(_Frozen):
    """How much a problem domain's severity multiplies its effectiveness and specialty weight:
    the Match trial found the benefit of matching larger for more severe clients."""

    mild: float = Field(default=1.0, ge=0)
    moderate: float = Field(default=1.5, ge=0)
    severe: float = Field(default=2.0, ge=0)


class RelaxationCosts(_Frozen):
    """When no therapist meets every hard constraint, the closest options are those whose
    violated constraints cost least in total (then the fewest violated, then the best score).
    Being inactive, a recorded conflict or dual relationship, and being a past therapist of the
    episode on rematch are never relaxed: such therapists are never offered. A therapist the
    client declined is offered again only after every other closest option."""

    gender: float = Field(default=1.0, gt=0)
    culture_faith: float = Field(default=1.0, gt=0)
    modality: float = Field(default=1.0, gt=0)
    availability: float = Field(default=2.0, gt=0)
    location: float = Field(default=3.0, gt=0)
    capacity: float = Field(default=4.0, gt=0)
    language: float = Field(default=6.0, gt=0)
    competence: float = Field(default=8.0, gt=0)


class MatchingConfig(_Frozen):
    """Every number the matching engine uses; the defaults are the network's, overridable per
    site with :meth:`for_site`."""

    weights: MatchWeights = MatchWeights()
    severity_weights: SeverityWeights = SeverityWeights()
    # A shrunken net improvement rate this far (as a proportion, 0.15 = 15 points) above the
    # network reference for the domain earns full effectiveness credit; as far below, full debit.
    effectiveness_full_scale: float = Field(default=0.15, gt=0, le=1)
    # Years of experience that earn full experience credit on a complex case.
    experienced_years: float = Field(default=10.0, gt=0)
    # A session needs this many consecutive minutes inside both the therapist's availability and
    # the client's time windows (the therapy "hour").
    session_minutes: int = Field(default=50, ge=5, le=480)
    # The wait part falls linearly from full credit (a session now) to none at this horizon.
    wait_horizon_days: float = Field(default=28.0, gt=0)
    # How many options a proposal offers (client and coordinator decide together).
    top: int = Field(default=3, ge=1, le=20)
    # A telehealth therapist based at another site of the network may be offered.
    telehealth_across_sites: bool = True
    # Problem domains that require a competence scope (besides age group and couple/family). A
    # site's override replaces the whole mapping (so a site can also drop a requirement).
    domain_scopes: dict[str, str] = {
        "trauma": "trauma",
        "eating": "eating_disorders",
        "substance_use": "substance_use",
        "psychosis": "psychosis",
    }
    relaxation_costs: RelaxationCosts = RelaxationCosts()
    # Not a matching weight but intake's other per-site rule, kept in the same per-site file:
    # an active episode with no contact (attended session or feedback) for this many site-local
    # days drops out (docs/clinical-rules.md, Episodes and their phases).
    dropout_after_days: int = Field(default=28, ge=1, le=365)

    @field_validator("domain_scopes")
    @classmethod
    def _known_codes(cls, value: dict[str, str]) -> dict[str, str]:
        unknown_domains = sorted(set(value) - PROBLEM_DOMAINS)
        if unknown_domains:
            raise ValueError(f"unknown problem domain(s): {', '.join(unknown_domains)}")
        unknown_scopes = sorted(set(value.values()) - COMPETENCE_SCOPES)
        if unknown_scopes:
            raise ValueError(f"unknown competence scope(s): {', '.join(unknown_scopes)}")
        return value

    @model_validator(mode="after")
    def _some_weight(self) -> MatchingConfig:
        if not any(v > 0 for v in self.weights.model_dump().values()):
            raise ValueError("weights: at least one weight must be above 0")
        return self

    @classmethod
    def for_site(
        cls, overrides: Mapping[str, Any] | None = None, base: MatchingConfig | None = None
    ) -> MatchingConfig:
        """The defaults (or ``base``, e.g. a network-wide config) with a site's overrides
        deep-merged on top: nested mappings merge key by key, other values replace."""
        start = (base or cls()).model_dump()
        return cls.model_validate(overlay(start, overrides or {}, replace=WHOLE_KEYS))


# A site's domain scopes replace the default's whole (a scope left out is not in scope).
WHOLE_KEYS = frozenset({"domain_scopes"})


@dataclass(frozen=True)
class SiteConfigs:
    """The deployment's matching configuration: a network-wide default and each site's own
    (the site's overrides merged over the default), from ``RAPPORT_MATCHING_FILE``."""

    default: MatchingConfig = field(default_factory=MatchingConfig)
    sites: Mapping[str, MatchingConfig] = field(default_factory=dict)

    def for_site(self, site_id: str) -> MatchingConfig:
        return self.sites.get(site_id, self.default)

    @classmethod
    def from_document(cls, data: Any) -> SiteConfigs:
        """``{"default": {...}, "sites": {"<site>": {...}}}``, each part optional; raises
        ``ValueError`` (a ``pydantic.ValidationError`` naming the field) when it is not."""
        default_overrides, site_overrides = site_document(data)
        default = MatchingConfig.for_site(default_overrides)
        return cls(
            default=default,
            sites={
                site: MatchingConfig.for_site(overrides, base=default)
                for site, overrides in site_overrides.items()
            },
        )
