"""Alert rules 1–11 of docs/clinical-rules.md ("Alert rules"), applied incrementally per episode.

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
hold. ``risk`` (rule 1) and ``repair`` (rule 5) are events: they open for every such record and
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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, NamedTuple

from services.analytics.rules_config import (
    DropoutWeights,
    InstrumentOverrides,
    InstrumentThresholds,
    RuleConfig,
    resolve_thresholds,
)
from shared.instruments import Instrument

__all__ = [
    "CLIENT_SIDE",
    "KINDS",
    "NAMES",
    "AlertChange",
    "DropoutWeights",
    "EpisodeState",
    "InstrumentOverrides",
    "InstrumentThresholds",
    "RuleConfig",
    "ScoredRecord",
    "UnknownInstrumentError",
    "apply",
    "apply_all",
    "by_urgency",
    "in_concern",
    "plain_name",
    "resolve_thresholds",
]

Severity = Literal["urgent", "high", "routine"]
Action = Literal["open", "resolve"]
InputValue = float | int | str | bool | None
AlertKey = tuple[str, str | None, str | None]
AlertIdentity = tuple[str, str | None, str | None, int]

CLIENT_SIDE: Final = frozenset({"client", "partner", "family"})
ZERO: Final = Decimal(0)

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
)

# docs/clinical-rules.md: urgent for risk; high for rupture, unresolved_rupture,
# early_alliance_risk, deterioration, rematch_suggested; routine otherwise.
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
}

ONE_SHOT: Final = frozenset({RISK, REPAIR})
# Events that stay open until a clinician acknowledges them (nothing in the rules closes them).
UNTIL_ACKNOWLEDGED: Final = frozenset({RISK})
EPISODE_LEVEL: Final = frozenset(
    {SPLIT_ALLIANCE, RATING_DISCREPANCY, DROPOUT_RISK, REMATCH_SUGGESTED}
)


class UnknownInstrumentError(KeyError):
    """The record names an instrument the analytics service has no definition of."""


# --------------------------------------------------------------------------------------------
# Values


class ScoredRecord(NamedTuple):
    """One scored questionnaire response (a ``feedback.recorded`` event, or a replay line).

    ``role`` is the respondent's role (client, partner, family, therapist); ``respondent_id`` is
    their pseudonym. ``items`` are the answers as given (``Decimal`` or ``int``), ``total`` the
    instrument's total (:meth:`shared.instruments.Instrument.total`). A named tuple: immutable
    and cheap to build (the replay builds a million of them).
    """

    episode_id: str
    site_id: str
    therapist_id: str
    session: int
    at: datetime | None
    role: str
    respondent_id: str
    instrument: str
    items: Mapping[str, Decimal | int]
    total: Decimal
    response_id: str | None = None  # which answer this is (an amendment names the one it replaces)

    def to_json(self) -> dict[str, Any]:
        out = {
            "episode_id": self.episode_id,
            "site_id": self.site_id,
            "therapist_id": self.therapist_id,
            "session": self.session,
            "at": self.at.isoformat() if self.at is not None else None,
            "respondent": self.role,
            "respondent_id": self.respondent_id,
            "instrument": self.instrument,
            "items": {k: str(v) for k, v in self.items.items()},
            "total": str(self.total),
        }
        if self.response_id is not None:
            out["response_id"] = self.response_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScoredRecord:
        at = data.get("at")
        return cls(
            episode_id=data["episode_id"],
            site_id=data["site_id"],
            therapist_id=data["therapist_id"],
            session=int(data["session"]),
            at=datetime.fromisoformat(at) if at else None,
            role=data["respondent"],
            respondent_id=data["respondent_id"],
            instrument=data["instrument"],
            items={k: Decimal(str(v)) for k, v in data["items"].items()},
            total=Decimal(str(data["total"])),
            response_id=data.get("response_id"),
        )


@dataclass(frozen=True, slots=True)
class AlertChange:
    """Open or resolve one alert, saying which rule and which numbers.

    ``respondent_id`` and ``instrument`` are None for the episode-level rules (6, 7, 10, 11);
    ``triggered_by`` is always the respondent whose record produced the change. ``session`` is
    the session of that record; ``opened_session`` the session the alert opened at (same as
    ``session`` for an open). ``lasting`` is False for events (risk, repair) that no rule
    resolves; of those, a risk alert ``awaits_acknowledgement`` by a clinician.

    ``inputs`` are the numbers that fired the rule, JSON-ready: keys and string values are codes
    (lower case, no spaces) and numbers are floats or ints, as ``AllianceAlert.inputs`` requires.
    """

    action: Action
    kind: str
    severity: Severity
    rule: str
    episode_id: str
    respondent_id: str | None
    instrument: str | None
    session: int
    opened_session: int
    inputs: dict[str, InputValue]
    suggestion_code: str
    suggestion: str
    triggered_by: str
    lasting: bool = True

    @property
    def respondent(self) -> str | None:
        """The alert's respondent (kept for the service's original field name)."""
        return self.respondent_id

    @property
    def awaits_acknowledgement(self) -> bool:
        """An event alert that stays open until a clinician acknowledges it (risk)."""
        return self.kind in UNTIL_ACKNOWLEDGED

    @property
    def key(self) -> AlertKey:
        """At most one alert is open per key in an episode."""
        return (self.kind, self.respondent_id, self.instrument)

    @property
    def identity(self) -> AlertIdentity:
        """Which alert this change is about: its key and the session it opened at."""
        return (self.kind, self.respondent_id, self.instrument, self.opened_session)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "severity": self.severity,
            "rule": self.rule,
            "episode_id": self.episode_id,
            "respondent_id": self.respondent_id,
            "instrument": self.instrument,
            "session": self.session,
            "opened_session": self.opened_session,
            "inputs": dict(self.inputs),
            "suggestion_code": self.suggestion_code,
            "suggestion": self.suggestion,
            "triggered_by": self.triggered_by,
            "lasting": self.lasting,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertChange:
        return cls(
            action=data["action"],
            kind=data["kind"],
            severity=data["severity"],
            rule=data["rule"],
            episode_id=data["episode_id"],
            respondent_id=data["respondent_id"],
            instrument=data["instrument"],
            session=int(data["session"]),
            opened_session=int(data["opened_session"]),
            inputs=dict(data["inputs"]),
            suggestion_code=data["suggestion_code"],
            suggestion=data["suggestion"],
            triggered_by=data["triggered_by"],
            lasting=bool(data["lasting"]),
        )


@dataclass(slots=True)
class Series:
    """One respondent's scores on one instrument in the episode, as running sums.

    ``before_*`` cover the sessions before ``cur_session`` (the *baseline* of the rules is
    ``before_sum / before_n``; the *previous score* is ``before_last``); ``cur_*`` the scores of
    the latest session. An open rupture keeps its pre-rupture baseline as ``rupture_sum`` /
    ``rupture_n`` so that repair compares exactly.
    """

    role: str
    first: Decimal
    first_session: int
    n: int = 0
    cur_session: int = 0
    cur_sum: Decimal = ZERO
    cur_n: int = 0
    cur_last: Decimal | None = None
    before_sum: Decimal = ZERO
    before_n: int = 0
    before_last: Decimal | None = None
    improved_ever: bool = False
    latest_improved: bool = False
    not_on_track_done: bool = False
    rupture_session: int | None = None
    rupture_sum: Decimal = ZERO
    rupture_n: int = 0
    unresolved_fired: bool = False

    _DECIMALS = ("first", "cur_sum", "cur_last", "before_sum", "before_last", "rupture_sum")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, Decimal) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Series:
        values = dict(data)
        for name in cls._DECIMALS:
            if values.get(name) is not None:
                values[name] = Decimal(values[name])
        return cls(**values)


@dataclass(slots=True)
class EpisodeState:
    """Everything the rules need to know about one episode, updated record by record.

    ``records`` are the episode's records in arrival order (kept so that a late record can
    rebuild the episode); ``series`` is keyed (respondent_id, instrument); ``open_alerts`` maps
    each open alert's key to the change that opened it; ``opened_log`` lists the identity of every
    alert ever opened (so that a rebuild reports only what is new). The ``session_*`` fields
    describe the latest session only (rules 6 and 7 compare respondents within one session).
    """

    episode_id: str
    records: list[ScoredRecord] = field(default_factory=list)
    last_session: int = 0
    session_at: datetime | None = None
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    open_alerts: dict[AlertKey, AlertChange] = field(default_factory=dict)
    opened_log: set[AlertIdentity] = field(default_factory=set)
    early_fired: set[str] = field(default_factory=set)
    # rule 6: instrument -> respondent_id -> (score, in concern); instrument -> split holds
    session_alliance: dict[str, dict[str, tuple[Decimal, bool]]] = field(default_factory=dict)
    session_split: dict[str, bool] = field(default_factory=dict)
    # rule 7: the therapist's latest (instrument, score); the client's scores by instrument
    session_therapist: tuple[str, Decimal] | None = None
    session_client: dict[str, Decimal] = field(default_factory=dict)
    session_client_last: str | None = None
    # rule 10 inputs
    session_feedback: bool = False
    early_low: bool = False
    missed_feedback: int = 0
    missed_sessions: int = 0
    open_ruptures: int = 0
    open_unresolved: int = 0
    dropout_dirty: bool = True  # a factor changed since the score was last compared
    dropout_holds: bool = False
    # rule 11 inputs
    low_sessions: int = 0
    last_low_session: int = 0
    improved_outcomes: int = 0
    rebuilds: int = 0

    def open_alert(self, kind: str, respondent_id: str | None, instrument: str | None) -> bool:
        return (kind, respondent_id, instrument) in self.open_alerts

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible snapshot (Decimals as strings)."""
        return {
            "episode_id": self.episode_id,
            "records": [r.to_json() for r in self.records],
            "last_session": self.last_session,
            "session_at": self.session_at.isoformat() if self.session_at else None,
            "series": [[rid, ins, s.to_json()] for (rid, ins), s in self.series.items()],
            "open_alerts": [a.to_json() for a in self.open_alerts.values()],
            "opened_log": sorted(
                ([k, r, i, s] for k, r, i, s in self.opened_log),
                key=lambda x: (x[3], x[0], x[1] or "", x[2] or ""),
            ),
            "early_fired": sorted(self.early_fired),
            "session_alliance": {
                ins: {rid: [str(score), concern] for rid, (score, concern) in group.items()}
                for ins, group in self.session_alliance.items()
            },
            "session_split": dict(self.session_split),
            "session_therapist": (
                [self.session_therapist[0], str(self.session_therapist[1])]
                if self.session_therapist
                else None
            ),
            "session_client": {k: str(v) for k, v in self.session_client.items()},
            "session_client_last": self.session_client_last,
            "session_feedback": self.session_feedback,
            "early_low": self.early_low,
            "missed_feedback": self.missed_feedback,
            "missed_sessions": self.missed_sessions,
            "open_ruptures": self.open_ruptures,
            "open_unresolved": self.open_unresolved,
            "dropout_dirty": self.dropout_dirty,
            "dropout_holds": self.dropout_holds,
            "low_sessions": self.low_sessions,
            "last_low_session": self.last_low_session,
            "improved_outcomes": self.improved_outcomes,
            "rebuilds": self.rebuilds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EpisodeState:
        at = data.get("session_at")
        therapist = data.get("session_therapist")
        return cls(
            episode_id=data["episode_id"],
            records=[ScoredRecord.from_json(r) for r in data["records"]],
            last_session=int(data["last_session"]),
            session_at=datetime.fromisoformat(at) if at else None,
            series={(rid, ins): Series.from_json(s) for rid, ins, s in data["series"]},
            open_alerts={
                (a.kind, a.respondent_id, a.instrument): a
                for a in (AlertChange.from_json(x) for x in data["open_alerts"])
            },
            opened_log={(k, r, i, int(s)) for k, r, i, s in data["opened_log"]},
            early_fired=set(data["early_fired"]),
            session_alliance={
                ins: {rid: (Decimal(v[0]), bool(v[1])) for rid, v in group.items()}
                for ins, group in data["session_alliance"].items()
            },
            session_split={k: bool(v) for k, v in data["session_split"].items()},
            session_therapist=(therapist[0], Decimal(therapist[1])) if therapist else None,
            session_client={k: Decimal(v) for k, v in data["session_client"].items()},
            session_client_last=data["session_client_last"],
            session_feedback=bool(data["session_feedback"]),
            early_low=bool(data["early_low"]),
            missed_feedback=int(data["missed_feedback"]),
            missed_sessions=int(data["missed_sessions"]),
            open_ruptures=int(data["open_ruptures"]),
            open_unresolved=int(data["open_unresolved"]),
            dropout_dirty=bool(data["dropout_dirty"]),
            dropout_holds=bool(data["dropout_holds"]),
            low_sessions=int(data["low_sessions"]),
            last_low_session=int(data["last_low_session"]),
            improved_outcomes=int(data["improved_outcomes"]),
            rebuilds=int(data["rebuilds"]),
        )


# --------------------------------------------------------------------------------------------
# Pure predicates (each rule's condition, on plain numbers)


def in_concern(
    th: InstrumentThresholds, total: Decimal, items: Mapping[str, Decimal | int]
) -> bool:
    """The instrument's concern condition (docs/clinical-rules.md, "Concern"; SRS: total < 36
    or any item < 9, Duncan et al. 2003; WAI-SR: total < 36, the 'weak' band)."""
    if th.concern_total_below is not None and total < th.concern_total_below:
        return True
    below = th.concern_any_item_below
    if below is not None:
        for value in items.values():
            if value < below:
                return True
    return False


def worse_by(th: InstrumentThresholds, first: Decimal, score: Decimal) -> Decimal:
    """How much worse ``score`` is than ``first`` in the instrument's direction (negative when
    better): ORS lower is worse; PHQ-9 and GAD-7 higher is worse."""
    return first - score if th.lower_is_worse else score - first


def in_clinical_range(th: InstrumentThresholds, score: Decimal) -> bool:
    """Rule 9's clinical range: ORS < 25; PHQ-9 ≥ 10; GAD-7 ≥ 8 (cutoffs from the definitions)."""
    assert th.clinical_cutoff is not None
    return score < th.clinical_cutoff if th.lower_is_worse else score >= th.clinical_cutoff


def rescaled_gap_holds(
    therapist: Decimal,
    therapist_th: InstrumentThresholds,
    client: Decimal,
    client_th: InstrumentThresholds,
) -> bool:
    """Rule 7 across instruments, exactly: on the 0–100 scale ((score − min) / (max − min) ×
    100) the therapist is above the client by at least the larger of the two RCs on that scale.
    Multiplied through by both ranges, so no division rounds at the threshold."""
    t_span = therapist_th.total_max - therapist_th.total_min
    c_span = client_th.total_max - client_th.total_min
    gap = (therapist - therapist_th.total_min) * c_span - (client - client_th.total_min) * t_span
    return gap >= max(therapist_th.reliable_change * c_span, client_th.reliable_change * t_span)


def dropout_score(
    weights: DropoutWeights,
    early_low_alliance: bool,
    open_ruptures: int,
    unresolved_ruptures: int,
    missed_feedback: int,
    missed_sessions: int,
) -> Decimal:
    """Rule 10's transparent score: the weighted sum of its risk factors."""
    return (
        weights.early_low_alliance * (1 if early_low_alliance else 0)
        + weights.open_rupture * open_ruptures
        + weights.unresolved_rupture * unresolved_ruptures
        + weights.missed_feedback * missed_feedback
        + weights.missed_session * missed_sessions
    )


def _num(value: Decimal) -> float:
    return float(value)


def _mean(total: Decimal, n: int) -> float:
    return round(float(total / n), 4)


# --------------------------------------------------------------------------------------------
# Applying records


def apply(
    state: EpisodeState | None,
    record: ScoredRecord,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    replaces: str | None = None,
) -> tuple[EpisodeState, list[AlertChange]]:
    """Apply one scored record to its episode's state: the state to use next and the alert
    changes, in the order the rules fire (rule 1 first, then 2 … 11).

    ``state`` None starts a new episode. Takes ownership of ``state`` (see the module docstring).
    A record earlier than the episode's latest session rebuilds the episode (late data). An
    amendment (``replaces``: the response id of the record it replaces) rebuilds the episode
    with the amended record in the place of the one it replaces, so it never counts twice.
    Raises :class:`UnknownInstrumentError` for an instrument not in ``instruments``, and
    ``ValueError`` for a record of another episode than ``state``'s.
    """
    instrument = instruments.get(record.instrument)
    if instrument is None:
        raise UnknownInstrumentError(record.instrument)
    if state is None:
        state = EpisodeState(record.episode_id)
    elif record.episode_id != state.episode_id:
        raise ValueError(f"record of episode {record.episode_id} applied to {state.episode_id}")
    elif replaces is not None:
        return _rebuild(state, record, instruments, config, replaces)
    elif record.session < state.last_session:
        return _rebuild(state, record, instruments, config)
    state.records.append(record)
    changes: list[AlertChange] = []
    _step(state, record, config.thresholds(instrument), instruments, config, changes)
    return state, changes


def apply_all(
    records: Iterable[ScoredRecord],
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    state: EpisodeState | None = None,
) -> tuple[EpisodeState | None, list[AlertChange]]:
    """Apply records of one episode one after the other (e.g. a backfill); all changes."""
    changes: list[AlertChange] = []
    for record in records:
        state, more = apply(state, record, instruments, config)
        changes.extend(more)
    return state, changes


def _rebuild(
    old: EpisodeState,
    record: ScoredRecord,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    replaces: str | None = None,
) -> tuple[EpisodeState, list[AlertChange]]:
    """Late record or amendment: re-apply the episode in session order (an amendment in the
    place of the record it replaces), report the difference."""
    records = _with_amendment(old.records, record, replaces)
    new = EpisodeState(old.episode_id, records=records, rebuilds=old.rebuilds + 1)
    history: list[AlertChange] = []
    for r in sorted(records, key=_session_of):  # stable: arrival order within a session
        _step(new, r, config.thresholds(instruments[r.instrument]), instruments, config, history)
    reported = old.opened_log
    reported_open = {a.identity: a for a in old.open_alerts.values()}
    out: list[AlertChange] = []
    for change in history:
        ident = change.identity
        if change.action == "open":
            if ident not in reported:
                out.append(change)
                if change.lasting:
                    reported_open[ident] = change
        elif ident in reported_open:
            del reported_open[ident]
            out.append(change)
    still_open = {a.identity for a in new.open_alerts.values()}
    withdrawn: dict[str, InputValue] = (
        {"reason": "amended", "amended_session": record.session}
        if replaces is not None
        else {"reason": "late-record", "late_session": record.session}
    )
    for ident, opened in reported_open.items():
        if ident not in still_open:  # the re-evaluated history no longer has it open
            out.append(
                _change(
                    "resolve",
                    opened.kind,
                    old.episode_id,
                    opened.respondent_id,
                    opened.instrument,
                    old.last_session,  # withdrawn now, i.e. at the episode's latest session
                    opened.opened_session,
                    dict(withdrawn),
                    record.respondent_id,
                )
            )
    for alert in new.open_alerts.values():
        ident = alert.identity
        if ident in reported and ident not in reported_open:
            out.append(alert)  # reported resolved before, open in the rebuilt history
    new.opened_log |= reported
    return new, out


def _with_amendment(
    records: list[ScoredRecord], record: ScoredRecord, replaces: str | None
) -> list[ScoredRecord]:
    """The episode's records with ``record`` added: in the place of the record it replaces
    (by response id; for a state kept before records carried ids, the latest record of the
    same session, respondent and instrument), else at the end."""
    if replaces is not None:
        position = next((i for i, r in enumerate(records) if r.response_id == replaces), None)
        if position is None:
            same = [
                i
                for i, r in enumerate(records)
                if r.response_id is None
                and (r.session, r.respondent_id, r.instrument)
                == (record.session, record.respondent_id, record.instrument)
            ]
            position = same[-1] if same else None
        if position is not None:
            return [*records[:position], record, *records[position + 1 :]]
    return [*records, record]


def _session_of(record: ScoredRecord) -> int:
    return record.session


def _change(
    action: Action,
    kind: str,
    episode_id: str,
    respondent_id: str | None,
    instrument: str | None,
    session: int,
    opened_session: int,
    inputs: dict[str, InputValue],
    triggered_by: str,
) -> AlertChange:
    code, text = SUGGESTIONS[kind]
    return AlertChange(
        action=action,
        kind=kind,
        severity=SEVERITY[kind],
        rule=RULE_IDS[kind],
        episode_id=episode_id,
        respondent_id=respondent_id,
        instrument=instrument,
        session=session,
        opened_session=opened_session,
        inputs=inputs,
        suggestion_code=code if action == "open" else "none",
        suggestion=text if action == "open" else "",
        triggered_by=triggered_by,
        lasting=kind not in ONE_SHOT,
    )


def _open(
    state: EpisodeState,
    out: list[AlertChange],
    record: ScoredRecord,
    kind: str,
    respondent_id: str | None,
    instrument: str | None,
    inputs: dict[str, InputValue],
) -> None:
    change = _change(
        "open",
        kind,
        state.episode_id,
        respondent_id,
        instrument,
        record.session,
        record.session,
        inputs,
        record.respondent_id,
    )
    if change.lasting:
        state.open_alerts[(kind, respondent_id, instrument)] = change
        if kind == RUPTURE:
            state.open_ruptures += 1
            state.dropout_dirty = True
        elif kind == UNRESOLVED_RUPTURE:
            state.open_unresolved += 1
            state.dropout_dirty = True
    state.opened_log.add(change.identity)
    out.append(change)


def _resolve(
    state: EpisodeState,
    out: list[AlertChange],
    record: ScoredRecord,
    key: AlertKey,
    inputs: dict[str, InputValue],
) -> None:
    opened = state.open_alerts.pop(key)
    if opened.kind == RUPTURE:
        state.open_ruptures -= 1
        state.dropout_dirty = True
    elif opened.kind == UNRESOLVED_RUPTURE:
        state.open_unresolved -= 1
        state.dropout_dirty = True
    out.append(
        _change(
            "resolve",
            opened.kind,
            state.episode_id,
            opened.respondent_id,
            opened.instrument,
            record.session,
            opened.opened_session,
            inputs,
            record.respondent_id,
        )
    )


def _step(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Apply one in-order record (session ≥ the episode's latest)."""
    session = record.session
    if session != state.last_session:
        _new_session(state, record, config)
    total = record.total
    rid = record.respondent_id
    client_side = record.role in CLIENT_SIDE

    if th.risk_items:
        _rule_1_risk(state, record, th, out)

    key = (rid, record.instrument)
    series = state.series.get(key)
    if series is None:
        series = state.series[key] = Series(record.role, total, session, cur_session=session)
    elif session != series.cur_session:
        series.before_sum += series.cur_sum
        series.before_n += series.cur_n
        series.before_last = series.cur_last
        series.cur_session = session
        series.cur_sum = ZERO
        series.cur_n = 0

    if th.kind == "alliance":
        concern = in_concern(th, total, record.items)
        if client_side:
            state.session_feedback = True
            _rules_2_3_low_alliance(state, record, th, concern, config, out)
            _rules_4_5_rupture(state, record, th, series, concern, config, out)
            _rule_6_split(state, record, th, concern, out)
        if record.role == "client" or record.role == "therapist":
            _rule_7_discrepancy(state, record, th, instruments, config, out)
    elif th.lower_is_worse is not None and client_side and series.n:
        _rules_8_9_outcome(state, record, th, series, config, out)

    series.n += 1
    series.cur_sum += total
    series.cur_n += 1
    series.cur_last = total

    _rule_10_dropout(state, record, config, out)
    if session >= config.rematch_session:
        _rule_11_rematch(state, record, config, out)


def _new_session(state: EpisodeState, record: ScoredRecord, config: RuleConfig) -> None:
    """Close the latest session (rule 10 counts it if it had no client-side alliance rating,
    and counts missed sessions from the gap in dates) and start the record's."""
    if state.last_session:
        if not state.session_feedback:
            state.missed_feedback += 1
        if record.at is not None and state.session_at is not None:
            gap_days = (record.at - state.session_at).days
            missed = gap_days // config.session_interval_days - 1
            if missed > 0:
                state.missed_sessions += missed
    state.last_session = record.session
    state.session_at = record.at
    state.session_feedback = False
    state.dropout_dirty = True
    if state.session_alliance:
        state.session_alliance = {}
        state.session_split = {}
    state.session_therapist = None
    if state.session_client:
        state.session_client = {}
    state.session_client_last = None


def _rule_1_risk(
    state: EpisodeState, record: ScoredRecord, th: InstrumentThresholds, out: list[AlertChange]
) -> None:
    """Rule 1 — risk: any risk item above 0 (PHQ-9 item 9, thoughts of self-harm; Kroenke,
    Spitzer & Williams 2001). Urgent, for every such response (an event: no rule resolves it;
    it stays open until a clinician acknowledges it). Confidentiality yields to a risk of harm:
    it must reach a clinician now."""
    items = record.items
    raised = [(item, items[item]) for item in th.risk_items if items.get(item, 0) > 0]
    if raised:
        inputs: dict[str, InputValue] = {"instrument": record.instrument}
        for item, value in raised:
            inputs[f"item_{item}"] = float(value)
        inputs["threshold"] = 0
        _open(state, out, record, RISK, record.respondent_id, record.instrument, inputs)


def _rules_2_3_low_alliance(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    concern: bool,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 2 — low_alliance: a client-side alliance score meets the instrument's concern
    condition (SRS < 36 or an item < 9, Duncan et al. 2003; WAI-SR < 36, Hatcher & Gillaspy
    2006). Rule 3 — early_alliance_risk: low alliance at session 1 or 2, once per respondent:
    early alliance predicts drop-out (Sharf et al. 2010); it resolves with the low alliance."""
    rid = record.respondent_id
    instrument = record.instrument
    session = record.session
    low_key: AlertKey = (LOW_ALLIANCE, rid, instrument)
    if concern:
        if state.last_low_session != session:
            state.low_sessions += 1
            state.last_low_session = session
        early = session in config.early_alliance_sessions
        if early and not state.early_low:
            state.early_low = True
            state.dropout_dirty = True
        if low_key not in state.open_alerts or (early and rid not in state.early_fired):
            inputs: dict[str, InputValue] = {
                "instrument": instrument,
                "score": _num(record.total),
                "concern_total_below": _opt(th.concern_total_below),
            }
            if th.concern_any_item_below is not None:
                inputs["lowest_item"] = float(min(record.items.values()))
                inputs["concern_any_item_below"] = _num(th.concern_any_item_below)
            if low_key not in state.open_alerts:
                _open(state, out, record, LOW_ALLIANCE, rid, instrument, inputs)
            if early and rid not in state.early_fired:
                state.early_fired.add(rid)
                early_inputs = dict(inputs)
                early_inputs["session"] = session
                early_inputs["early_sessions_from"] = min(config.early_alliance_sessions)
                early_inputs["early_sessions_to"] = max(config.early_alliance_sessions)
                _open(state, out, record, EARLY_ALLIANCE_RISK, rid, instrument, early_inputs)
    elif low_key in state.open_alerts:
        inputs = {"instrument": instrument, "score": _num(record.total)}
        _resolve(state, out, record, low_key, inputs)
        early_key: AlertKey = (EARLY_ALLIANCE_RISK, rid, instrument)
        if early_key in state.open_alerts:
            _resolve(state, out, record, early_key, dict(inputs))


def _opt(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _rules_4_5_rupture(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    concern: bool,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 4 — rupture: with an earlier score and no open rupture, the score is below the
    previous score or below the baseline by at least RC (the larger drop counts). Rule 5 —
    repair: at the first later session within RC of the pre-rupture baseline (baseline − score
    < RC) and not in concern; unresolved_rupture: not repaired by session r + 3, once, escalated
    to the supervisor. Ruptures and their repair: Eubanks, Muran & Safran 2018; RC: Jacobson &
    Truax 1991."""
    total = record.total
    rc = th.reliable_change
    session = record.session
    rid = record.respondent_id
    instrument = record.instrument
    if series.rupture_session is not None:
        if session <= series.rupture_session:
            return
        gap_n = series.rupture_sum - total * series.rupture_n  # (baseline − score) × n
        if not concern and gap_n < rc * series.rupture_n:
            inputs: dict[str, InputValue] = {
                "instrument": instrument,
                "score": _num(total),
                "pre_rupture_baseline": _mean(series.rupture_sum, series.rupture_n),
                "gap": _mean(gap_n, series.rupture_n),
                "threshold": _num(rc),
                "rupture_session": series.rupture_session,
                "in_concern": concern,
            }
            _resolve(state, out, record, (RUPTURE, rid, instrument), dict(inputs))
            unresolved_key: AlertKey = (UNRESOLVED_RUPTURE, rid, instrument)
            if unresolved_key in state.open_alerts:
                _resolve(state, out, record, unresolved_key, dict(inputs))
            _open(state, out, record, REPAIR, rid, instrument, inputs)
            series.rupture_session = None
            series.rupture_sum = ZERO
            series.rupture_n = 0
            series.unresolved_fired = False
        elif (
            not series.unresolved_fired
            and session >= series.rupture_session + config.unresolved_rupture_sessions
        ):
            series.unresolved_fired = True
            _open(
                state,
                out,
                record,
                UNRESOLVED_RUPTURE,
                rid,
                instrument,
                {
                    "instrument": instrument,
                    "score": _num(total),
                    "pre_rupture_baseline": _mean(series.rupture_sum, series.rupture_n),
                    "gap": _mean(gap_n, series.rupture_n),
                    "threshold": _num(rc),
                    "in_concern": concern,
                    "rupture_session": series.rupture_session,
                    "sessions_allowed": config.unresolved_rupture_sessions,
                },
            )
        return
    n = series.before_n
    if not n:
        return
    previous = series.before_last
    assert previous is not None
    drop_previous = previous - total
    baseline_gap_n = series.before_sum - total * n  # (baseline − score) × n, exact
    rc_n = rc * n
    if drop_previous >= rc or baseline_gap_n >= rc_n:
        drop_baseline = baseline_gap_n / n
        by_baseline = baseline_gap_n > drop_previous * n
        _open(
            state,
            out,
            record,
            RUPTURE,
            rid,
            instrument,
            {
                "instrument": instrument,
                "score": _num(total),
                "previous": _num(previous),
                "baseline": _mean(series.before_sum, n),
                "baseline_n": n,
                "drop_previous": _num(drop_previous),
                "drop_baseline": round(float(drop_baseline), 4),
                "drop": round(float(drop_baseline if by_baseline else drop_previous), 4),
                "counted": "baseline" if by_baseline else "previous",
                "threshold": _num(rc),
            },
        )
        series.rupture_session = record.session
        series.rupture_sum = series.before_sum
        series.rupture_n = n
        series.unresolved_fired = False


def _rule_6_split(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    concern: bool,
    out: list[AlertChange],
) -> None:
    """Rule 6 — split_alliance: in one session, two or more client-side respondents on the same
    instrument differ by at least RC, or at least one is in concern and one is not (split
    alliances in couple and family therapy: Pinsof & Catherall 1986). One per episode."""
    group = state.session_alliance.get(record.instrument)
    if group is None:
        group = state.session_alliance[record.instrument] = {}
    group[record.respondent_id] = (record.total, concern)
    if len(group) < 2:
        return
    scores = [score for score, _ in group.values()]
    highest = max(scores)
    lowest = min(scores)
    concerns = sum(1 for _, c in group.values() if c)
    holds_here = highest - lowest >= th.reliable_change or 0 < concerns < len(group)
    state.session_split[record.instrument] = holds_here
    holds = holds_here or any(state.session_split.values())
    key: AlertKey = (SPLIT_ALLIANCE, None, None)
    opened = state.open_alerts.get(key)
    if holds == (opened is not None):
        return
    if opened is not None and record.session <= opened.session:
        return  # resolved only at a later session
    inputs: dict[str, InputValue] = {
        "instrument": record.instrument,
        "respondents": len(group),
        "highest": _num(highest),
        "lowest": _num(lowest),
        "difference": _num(highest - lowest),
        "threshold": _num(th.reliable_change),
        "in_concern": concerns,
        "not_in_concern": len(group) - concerns,
    }
    if holds:
        _open(state, out, record, SPLIT_ALLIANCE, None, None, inputs)
    else:
        _resolve(state, out, record, key, inputs)


def _rule_7_discrepancy(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 7 — rating_discrepancy: in one session, the therapist's alliance score is above the
    client's by at least RC; across instruments on a 0–100 scale with the larger RC. The client's
    rating predicts outcome better than the therapist's (Flückiger et al. 2018). One per
    episode. The client's score is on the same instrument, else on the paired one
    (``config.discrepancy_pairs``), else their latest alliance score in the session."""
    if record.role == "therapist":
        state.session_therapist = (record.instrument, record.total)
    else:
        state.session_client[record.instrument] = record.total
        state.session_client_last = record.instrument
    therapist = state.session_therapist
    if therapist is None or not state.session_client:
        return
    t_instrument, t_score = therapist
    clients = state.session_client
    c_instrument = t_instrument
    if c_instrument not in clients:
        paired = config.discrepancy_pairs.get(t_instrument)
        if paired is not None and paired in clients:
            c_instrument = paired
        else:
            assert state.session_client_last is not None
            c_instrument = state.session_client_last
    c_score = clients[c_instrument]
    t_th = th if record.instrument == t_instrument else config.thresholds(instruments[t_instrument])
    c_th = th if record.instrument == c_instrument else config.thresholds(instruments[c_instrument])
    same = t_instrument == c_instrument
    if same:
        holds = t_score - c_score >= t_th.reliable_change
    else:
        holds = rescaled_gap_holds(t_score, t_th, c_score, c_th)
    key: AlertKey = (RATING_DISCREPANCY, None, None)
    opened = state.open_alerts.get(key)
    if holds == (opened is not None):
        return
    if opened is not None and record.session <= opened.session:
        return  # resolved only at a later session
    inputs: dict[str, InputValue] = {
        "therapist_instrument": t_instrument,
        "therapist_score": _num(t_score),
        "client_instrument": c_instrument,
        "client_score": _num(c_score),
    }
    if same:
        inputs["difference"] = _num(t_score - c_score)
        inputs["threshold"] = _num(t_th.reliable_change)
    else:
        t_span = t_th.total_max - t_th.total_min
        c_span = c_th.total_max - c_th.total_min
        t_scaled = (t_score - t_th.total_min) / t_span * 100
        c_scaled = (c_score - c_th.total_min) / c_span * 100
        rc_scaled = max(t_th.reliable_change / t_span, c_th.reliable_change / c_span) * 100
        inputs["therapist_scaled"] = round(float(t_scaled), 2)
        inputs["client_scaled"] = round(float(c_scaled), 2)
        inputs["difference"] = round(float(t_scaled - c_scaled), 2)
        inputs["threshold"] = round(float(rc_scaled), 2)
        inputs["scale"] = "0-100"
    if holds:
        _open(state, out, record, RATING_DISCREPANCY, None, None, inputs)
    else:
        _resolve(state, out, record, key, inputs)


def _rules_8_9_outcome(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 8 — deterioration: an outcome score worse than the respondent's first score on the
    instrument by at least RC (ORS lower is worse; PHQ-9, GAD-7 higher is worse); therapists
    rarely see it coming (Hannan et al. 2005). Rule 9 — not_on_track: evaluated once, at the
    first record with session ≥ 4 that is not the respondent's first on the instrument: the first
    score was in the clinical range and no score so far improved on it by at least RC; feedback
    helps most for not-on-track clients (de Jong et al. 2021). It resolves once a later score
    improves on the first by at least RC. Called for every record but the series' first."""
    total = record.total
    rc = th.reliable_change
    rid = record.respondent_id
    instrument = record.instrument
    worse = worse_by(th, series.first, total)
    improved = -worse >= rc
    open_alerts = state.open_alerts

    det_key: AlertKey = (DETERIORATION, rid, instrument)
    if worse >= rc:
        if det_key not in open_alerts:
            inputs = _outcome_inputs(record, th, series, worse)
            _open(state, out, record, DETERIORATION, rid, instrument, inputs)
    elif det_key in open_alerts:
        _resolve(state, out, record, det_key, _outcome_inputs(record, th, series, worse))

    if improved:
        series.improved_ever = True
    if record.role == "client" and improved != series.latest_improved:
        state.improved_outcomes += 1 if improved else -1
    series.latest_improved = improved

    not_key: AlertKey = (NOT_ON_TRACK, rid, instrument)
    if improved and not_key in open_alerts:
        _resolve(state, out, record, not_key, _outcome_inputs(record, th, series, worse))
    if not series.not_on_track_done and record.session >= config.not_on_track_session:
        series.not_on_track_done = True
        if in_clinical_range(th, series.first) and not series.improved_ever:
            inputs = _outcome_inputs(record, th, series, worse)
            inputs["clinical_cutoff"] = _opt(th.clinical_cutoff)
            inputs["evaluated_at_session"] = record.session
            _open(state, out, record, NOT_ON_TRACK, rid, instrument, inputs)


def _outcome_inputs(
    record: ScoredRecord, th: InstrumentThresholds, series: Series, worse: Decimal
) -> dict[str, InputValue]:
    return {
        "instrument": record.instrument,
        "score": _num(record.total),
        "first": _num(series.first),
        "first_session": series.first_session,
        "change": _num(-worse),
        "threshold": _num(th.reliable_change),
        "direction": "lower_is_worse" if th.lower_is_worse else "higher_is_worse",
    }


def _rule_10_dropout(
    state: EpisodeState, record: ScoredRecord, config: RuleConfig, out: list[AlertChange]
) -> None:
    """Rule 10 — dropout_risk: a transparent points score of the drop-out predictors the rules
    name (low early alliance, Sharf et al. 2010; open and unresolved ruptures, Muran et al.
    2009; sessions without client-side alliance feedback; sessions missed, from the gaps between
    session dates), opened when the score is above ``config.dropout_threshold``. Base drop-out
    rate about 20% (Swift & Greenberg 2012). One per episode, checked at every record (the score
    is recomputed when a factor changes and at every new session)."""
    w = config.dropout_weights
    if state.dropout_dirty:
        state.dropout_dirty = False
        state.dropout_holds = _dropout_points(state, w) > config.dropout_threshold
    holds = state.dropout_holds
    key: AlertKey = (DROPOUT_RISK, None, None)
    opened = state.open_alerts.get(key)
    if holds == (opened is not None):
        return
    if opened is not None and record.session <= opened.session:
        return  # resolved only at a later session
    inputs: dict[str, InputValue] = {
        "score": _num(_dropout_points(state, w)),
        "threshold": _num(config.dropout_threshold),
        "early_low_alliance": int(state.early_low),
        "open_ruptures": state.open_ruptures,
        "unresolved_ruptures": state.open_unresolved,
        "missed_feedback_sessions": state.missed_feedback,
        "missed_sessions": state.missed_sessions,
        "weight_early_low_alliance": _num(w.early_low_alliance),
        "weight_open_rupture": _num(w.open_rupture),
        "weight_unresolved_rupture": _num(w.unresolved_rupture),
        "weight_missed_feedback": _num(w.missed_feedback),
        "weight_missed_session": _num(w.missed_session),
    }
    if holds:
        _open(state, out, record, DROPOUT_RISK, None, None, inputs)
    else:
        _resolve(state, out, record, key, inputs)


def _dropout_points(state: EpisodeState, weights: DropoutWeights) -> Decimal:
    return dropout_score(
        weights,
        state.early_low,
        state.open_ruptures,
        state.open_unresolved,
        state.missed_feedback,
        state.missed_sessions,
    )


def _rule_11_rematch(
    state: EpisodeState, record: ScoredRecord, config: RuleConfig, out: list[AlertChange]
) -> None:
    """Rule 11 — rematch_suggested: at a session ≥ 6, low alliance in at least 2 sessions or an
    unresolved rupture, and no reliable improvement in outcome (no client outcome instrument's
    latest score improved on the first by RC): suggest offering a different therapist (matching
    matters: Constantino et al. 2021). One per episode, checked at every record from session 6."""
    key: AlertKey = (REMATCH_SUGGESTED, None, None)
    opened = state.open_alerts.get(key)
    low_enough = state.low_sessions >= config.rematch_low_alliance_sessions
    holds = (low_enough or state.open_unresolved > 0) and state.improved_outcomes == 0
    if holds == (opened is not None):
        return
    inputs: dict[str, InputValue] = {
        "session": record.session,
        "from_session": config.rematch_session,
        "low_alliance_sessions": state.low_sessions,
        "low_alliance_sessions_needed": config.rematch_low_alliance_sessions,
        "unresolved_ruptures": state.open_unresolved,
        "reliably_improved_outcomes": state.improved_outcomes,
    }
    if holds:
        _open(state, out, record, REMATCH_SUGGESTED, None, None, inputs)
    elif opened is not None and record.session > opened.session:
        _resolve(state, out, record, key, inputs)
