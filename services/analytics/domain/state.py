"""An episode's state as the rules keep it (:class:`EpisodeState`, with each respondent's
running sums per instrument in :class:`Series`): a small value, updated record by record, that
serialises to JSON (``to_json`` / ``from_json``) so the service can persist it between events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from services.analytics.domain.kinds import AlertIdentity, AlertKey
from services.analytics.domain.records import AlertChange, ScoredRecord

ZERO: Final = Decimal(0)


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
    # rule 9 with a model: consecutive records (from session 3) worse than the expected line
    off_track_run: int = 0
    # rule 9's basis at each session of a client's series, as decided then: the model's
    # percentiles (n, p10, p25, p50, p75, p90) or None (the fallback rule). A rebuild (late
    # record, amendment) reuses those of sessions before the late record's: a new model never
    # changes decisions already taken.
    rule_9_basis: dict[int, tuple[float, ...] | None] = field(default_factory=dict)
    rupture_session: int | None = None
    rupture_sum: Decimal = ZERO
    rupture_n: int = 0
    unresolved_fired: bool = False

    _DECIMALS = ("first", "cur_sum", "cur_last", "before_sum", "before_last", "rupture_sum")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, dict):
                value = {str(k): None if v is None else list(v) for k, v in value.items()}
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Series:
        values = dict(data)
        for name in cls._DECIMALS:
            if values.get(name) is not None:
                values[name] = Decimal(values[name])
        values["rule_9_basis"] = {
            int(session): None if basis is None else tuple(basis)
            for session, basis in values.get("rule_9_basis", {}).items()
        }
        return cls(**values)


# Statuses of a session that say how it turned out (not only that it is booked).
OUTCOMES: Final = frozenset({"attended", "missed", "cancelled_by_client", "cancelled_by_clinic"})


@dataclass(slots=True)
class Attendance:
    """What the attendance rules know of an episode (domain.attendance).

    ``sessions``: each reported session's status by session number (a feedback response implies
    ``attended`` for a session nobody reported); ``last_contact``: the latest contact (an
    attended session's time, a feedback response's); ``phase``: the episode's phase as intake
    publishes it (None until analytics hears of one); ``reported``: a front-end reports this
    episode's sessions (rule 10 then counts the missed sessions reported, not gaps in dates);
    ``intervals_without_contact``: rule 10's count of expected session intervals without
    contact, as the clock last counted it (0 again at each contact).
    """

    sessions: dict[int, str] = field(default_factory=dict)
    last_contact: datetime | None = None
    phase: str | None = None
    # when the phase was entered (an older phase change arriving late does not undo a newer)
    phase_at: datetime | None = None
    reported: bool = False
    intervals_without_contact: int = 0

    def missed(self) -> int:
        return sum(1 for status in self.sessions.values() if status == "missed")

    def latest_session(self) -> int:
        return max((n for n, s in self.sessions.items() if s in OUTCOMES), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": {str(n): status for n, status in sorted(self.sessions.items())},
            "last_contact": self.last_contact.isoformat() if self.last_contact else None,
            "phase": self.phase,
            "phase_at": self.phase_at.isoformat() if self.phase_at else None,
            "reported": self.reported,
            "intervals_without_contact": self.intervals_without_contact,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Attendance:
        if not data:  # a state saved before attendance was followed
            return cls()
        contact = data.get("last_contact")
        phase_at = data.get("phase_at")
        return cls(
            sessions={int(n): str(status) for n, status in data.get("sessions", {}).items()},
            last_contact=datetime.fromisoformat(contact) if contact else None,
            phase=data.get("phase"),
            phase_at=datetime.fromisoformat(phase_at) if phase_at else None,
            reported=bool(data.get("reported", False)),
            intervals_without_contact=int(data.get("intervals_without_contact", 0)),
        )


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
    # rule 12: each goal's first rating, keyed (respondent_id, instrument) then goal id
    goal_first: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)
    # rule 13: low_support opens at most once per episode
    low_support_opened: bool = False
    # attendance and time: missed_sessions, no_contact, rule 10's attendance factors
    attendance: Attendance = field(default_factory=Attendance)
    rebuilds: int = 0
    # while a rebuild re-applies the records: rule 9's basis kept for each series' sessions
    # before the late record's (not persisted: empty outside a rebuild)
    kept_rule_9_basis: dict[tuple[str, str], dict[int, tuple[float, ...] | None]] = field(
        default_factory=dict
    )

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
            "goal_first": [
                [rid, ins, {goal: str(v) for goal, v in firsts.items()}]
                for (rid, ins), firsts in self.goal_first.items()
            ],
            "low_support_opened": self.low_support_opened,
            "attendance": self.attendance.to_json(),
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
            # .get: states saved before rules 12 and 13 lack these
            goal_first={
                (rid, ins): {goal: Decimal(v) for goal, v in firsts.items()}
                for rid, ins, firsts in data.get("goal_first", [])
            },
            low_support_opened=bool(data.get("low_support_opened", False)),
            attendance=Attendance.from_json(data.get("attendance")),
            rebuilds=int(data["rebuilds"]),
        )
