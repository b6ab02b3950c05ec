"""Client–therapist matching (docs/clinical-rules.md, Matching and Therapist effectiveness;
issue 3), a package of one idea per module: ``types`` (what the engine reads and answers),
``config`` (vocabularies and per-site weights), ``input_checks`` (the API's 422s),
``availability`` (weekly bitmaps), ``roster`` (the registry and effectiveness as columns),
``constraints``, ``scoring``, ``wording`` (explanations) and ``proposal`` (the entry points and
the relaxation). This module is the package's public interface.

Pure: no I/O, no database, no clock (``now`` is passed in, in the site's local time), no async.

    roster = Roster.build(therapists)                 # once per registry change
    table = EffectivenessTable(records)               # once per effectiveness update
    proposal = propose(intake, roster, table, config, now)

* **Hard constraints** (:data:`CONSTRAINTS`) decide who may be offered at all: active, capacity
  left, no recorded conflict or dual relationship, not a past therapist of the episode (on
  rematch), not declined by the client for this intake, a shared language, in-person site or
  telehealth feasibility, a common session time, competence scope (age group, couple/family,
  and problem domains such as eating disorders), and each *required* preference.
* **Score**: a transparent weighted sum of parts (:class:`ScorePart`), each a fraction of its
  weight in :class:`MatchWeights`: problem-domain effectiveness (the shrunken estimate's distance
  from the network reference, weighted by severity; "not enough data" counts as neutral, as in
  the Match trial, Constantino et al. 2021), specialty fit, each stated *preferred* preference,
  experience on complex cases (severe, risk, difficulty in past relationships), the earliest
  common session, and caseload balance. Every part is rounded to 0.001 points and the total is
  the sum of the rounded parts, so the explanation adds up exactly and the batch assignment
  optimises whole milli-points.
* **Proposal**: the top options with, for each, which constraints held and what each part
  contributed, in words for a coordinator. When nobody meets every hard constraint: the options
  that come closest, each saying what it misses, and how many therapists each constraint
  excluded — never an empty answer while anyone can be offered. Closest means: the cheapest
  violated constraints in total (:class:`RelaxationCosts`), then the fewest violated, then the
  best score; therapists the client declined come last, after every other near miss, marked
  ``not_declined`` (the client may change their mind; they are never offered ahead of someone
  they have not turned down). Inactive therapists, a recorded conflict or dual relationship and
  the episode's past therapists on rematch are never relaxed (:data:`NEVER_RELAXED`): when
  nobody else is registered the proposal's status is ``none``, with the reasons.

One implementation serves one therapist and ten thousand: the :class:`Roster` keeps the registry
as column arrays (a boolean array per site, language, scope … code and a weekly availability
bitmap per therapist), and every constraint and score part is computed over all therapists at
once with numpy. :func:`hard_constraints` and :func:`score` are the same code on a one-therapist
roster, so a single pair and a proposal can never disagree.

Availability is weekly: 5-minute cells from Monday 00:00 (times are rounded inward to the
5-minute grid). A session is ``session_minutes`` consecutive minutes inside both the therapist's
slots and, when given, the client's windows.
"""

from __future__ import annotations

from services.intake.domain.matching.config import (
    AGE_GROUPS,
    CLASSIFICATIONS,
    COMPETENCE_SCOPES,
    FORMATS,
    GENDERS,
    LANGUAGES,
    MODALITIES,
    PROBLEM_DOMAINS,
    SEVERITIES,
    STRENGTHS,
    UNITS,
    MatchingConfig,
    MatchWeights,
    RelaxationCosts,
    SeverityWeights,
    SiteConfigs,
)
from services.intake.domain.matching.input_checks import intake_problems, therapist_problems
from services.intake.domain.matching.proposal import (
    Eligibility,
    constraint_checks,
    eligibility,
    hard_constraints,
    propose,
    score,
)
from services.intake.domain.matching.roster import EffectivenessTable, Roster
from services.intake.domain.matching.types import (
    CONSTRAINTS,
    NEVER_RELAXED,
    SCORE_PARTS,
    ConstraintCheck,
    DomainReference,
    Effectiveness,
    Estimate,
    ExclusionCount,
    FieldProblem,
    Intake,
    Preference,
    Preferences,
    ProblemDomain,
    Proposal,
    ProposedOption,
    ScoreBreakdown,
    ScorePart,
    Therapist,
    TimePreference,
    WeeklySlot,
)

__all__ = [
    "AGE_GROUPS",
    "CLASSIFICATIONS",
    "COMPETENCE_SCOPES",
    "CONSTRAINTS",
    "FORMATS",
    "GENDERS",
    "LANGUAGES",
    "MODALITIES",
    "NEVER_RELAXED",
    "PROBLEM_DOMAINS",
    "SCORE_PARTS",
    "SEVERITIES",
    "STRENGTHS",
    "UNITS",
    "ConstraintCheck",
    "DomainReference",
    "Effectiveness",
    "EffectivenessTable",
    "Eligibility",
    "Estimate",
    "ExclusionCount",
    "FieldProblem",
    "Intake",
    "MatchWeights",
    "MatchingConfig",
    "Preference",
    "Preferences",
    "ProblemDomain",
    "Proposal",
    "ProposedOption",
    "RelaxationCosts",
    "Roster",
    "ScoreBreakdown",
    "ScorePart",
    "SeverityWeights",
    "SiteConfigs",
    "Therapist",
    "TimePreference",
    "WeeklySlot",
    "constraint_checks",
    "eligibility",
    "hard_constraints",
    "intake_problems",
    "propose",
    "score",
    "therapist_problems",
]
