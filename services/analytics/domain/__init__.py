"""Alert rules 1–15 of docs/clinical-rules.md ("Alert rules"), applied incrementally per episode.

Pure: no I/O, no clock, no database. The service (Kafka handler, persisted state) and
``rapport replay`` (offline) run exactly this code:

    state, changes = apply(state, record, instruments, config)

* ``record`` is one scored response (:class:`ScoredRecord`); totals and items are ``Decimal`` at
  the instrument's precision and every threshold is compared exactly (cross-multiplied where a
  mean or a rescale is involved), so a drop of exactly RC counts.
* ``config`` (:class:`RuleConfig`, ``services/analytics/rules_config.py``) holds every number the
  rules use; defaults are those of docs/clinical-rules.md and the instrument definitions.
* ``state`` (:class:`EpisodeState`) is a small value per episode with running sums and flags, so
  an in-order record costs O(1) work. It serialises with ``to_json()`` / ``from_json()``.
* ``changes`` are :class:`AlertChange` values (open / resolve), each naming its kind, severity,
  rule id, the numbers that fired it and a short suggestion for the clinician.

Ownership: ``apply`` takes ownership of ``state`` and may update it in place; it returns the state
to use next (usually the same object). Take a snapshot with ``to_json()`` first if you need the old
value. Records and changes are immutable.

Keys of open alerts. Rules 2–5 and 8–9 are per respondent and instrument: at most one open alert
per (kind, respondent, instrument) in an episode; it resolves when its condition no longer holds
and a recurrence opens a new one. Rules 6, 7, 10 and 11 are per episode: at most one open, keyed
(kind, None, None), resolved at a later session where the condition is checked and does not
hold. Rule 12 (goals_not_progressing) is per client and instrument like rule 8; rule 13
(low_support) is per client and instrument but opens at most once per episode. ``risk``
(rule 1) and ``repair`` (rule 5) are events: they open for every such record and
no rule resolves them (``AlertChange.lasting`` is False). A repair is closed as it opens; a risk
alert stays open until a clinician acknowledges it (``AlertChange.awaits_acknowledgement``), which
happens outside the rules and changes nothing in the episode's state.

Late records ("Records are applied in session order per episode; a late record re-evaluates what
it affects"): a record whose session is earlier than the latest session already applied to its
episode makes ``apply`` rebuild the episode from its records (kept in the state) sorted by
(session, arrival order), and return the difference with what was already reported: alerts the
rebuilt history opens that had never been opened (with their resolve when the rebuilt history
already closed them), resolves of alerts reported open that the rebuilt history closes or no
longer contains, and the re-opening of any alert the rebuilt history holds open but that had been
reported resolved. ``EpisodeState.rebuilds`` counts these rebuilds (to log them).

The package, by idea: ``kinds`` (the alerts: kinds, severities, rule ids, names, suggestions),
``records`` (a scored response, an alert change), ``state`` (the episode's state and its JSON),
``thresholds`` (each rule's condition on plain numbers), ``trajectories`` (what rule 9 reads of
an expected-trajectories model), ``changes`` (opening and resolving alerts), ``alliance``
(rules 1–7), ``outcome`` (rules 8–9), ``dropout`` (rules 10–11), ``goals`` (rules 12–13: goals
not progressing, low support), ``attendance`` (rules 14–15: missed sessions, no contact, and the
time-driven checks) and ``episodes`` (applying records, late records and amendments).
The names below are its public
face: import them from ``services.analytics.domain``.
"""

from __future__ import annotations

from services.analytics.domain.attendance import (
    TIME_DRIVEN,
    due_checks,
    fire,
    latest_session,
    missed_in_a_row,
    on_phase,
    on_session,
)
from services.analytics.domain.episodes import apply, apply_all
from services.analytics.domain.kinds import (
    DETERIORATION,
    DROPOUT_RISK,
    EARLY_ALLIANCE_RISK,
    GOALS_NOT_PROGRESSING,
    KINDS,
    LOW_ALLIANCE,
    LOW_SUPPORT,
    MISSED_SESSIONS,
    NAMES,
    NO_CONTACT,
    NOT_ON_TRACK,
    ONE_SHOT,
    RATING_DISCREPANCY,
    REMATCH_SUGGESTED,
    REPAIR,
    RISK,
    RULE_IDS,
    RUPTURE,
    SEVERITY,
    SPLIT_ALLIANCE,
    SUGGESTIONS,
    UNRESOLVED_RUPTURE,
    UNTIL_ACKNOWLEDGED,
    Action,
    AlertIdentity,
    AlertKey,
    InputValue,
    Severity,
    by_urgency,
    plain_name,
)
from services.analytics.domain.records import (
    CLIENT_SIDE,
    AlertChange,
    Occasion,
    ScoredRecord,
    SessionFact,
    UnknownInstrumentError,
)
from services.analytics.domain.state import Attendance, EpisodeState, Series
from services.analytics.domain.thresholds import (
    dropout_score,
    in_clinical_range,
    in_concern,
    rescaled_gap_holds,
    worse_by,
)
from services.analytics.domain.trajectories import (
    InstrumentTrajectory,
    SessionPercentiles,
    Trajectories,
)
from services.analytics.rules_config import (
    DropoutWeights,
    InstrumentOverrides,
    InstrumentThresholds,
    RuleConfig,
    resolve_thresholds,
)

__all__ = [
    "CLIENT_SIDE",
    "DETERIORATION",
    "DROPOUT_RISK",
    "EARLY_ALLIANCE_RISK",
    "GOALS_NOT_PROGRESSING",
    "KINDS",
    "LOW_ALLIANCE",
    "LOW_SUPPORT",
    "MISSED_SESSIONS",
    "NAMES",
    "NOT_ON_TRACK",
    "NO_CONTACT",
    "ONE_SHOT",
    "RATING_DISCREPANCY",
    "REMATCH_SUGGESTED",
    "REPAIR",
    "RISK",
    "RULE_IDS",
    "RUPTURE",
    "SEVERITY",
    "SPLIT_ALLIANCE",
    "SUGGESTIONS",
    "TIME_DRIVEN",
    "UNRESOLVED_RUPTURE",
    "UNTIL_ACKNOWLEDGED",
    "Action",
    "AlertChange",
    "AlertIdentity",
    "AlertKey",
    "Attendance",
    "DropoutWeights",
    "EpisodeState",
    "InputValue",
    "InstrumentOverrides",
    "InstrumentThresholds",
    "InstrumentTrajectory",
    "Occasion",
    "RuleConfig",
    "ScoredRecord",
    "Series",
    "SessionFact",
    "SessionPercentiles",
    "Severity",
    "Trajectories",
    "UnknownInstrumentError",
    "apply",
    "apply_all",
    "by_urgency",
    "dropout_score",
    "due_checks",
    "fire",
    "in_clinical_range",
    "in_concern",
    "latest_session",
    "missed_in_a_row",
    "on_phase",
    "on_session",
    "plain_name",
    "rescaled_gap_holds",
    "resolve_thresholds",
    "worse_by",
]
