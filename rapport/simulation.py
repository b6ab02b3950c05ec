"""A simulated counselling network: episodes with known ruptures, repairs, split alliances,
deterioration, risk and drop-out, written as replay records with their labels.

Used by ``rapport simulate``, the demo, the analytics validation test and the benchmarks.
Deterministic by seed. Parameters follow the literature in docs/clinical-rules.md:

* drop-out about 20% of episodes (Swift & Greenberg 2012), twice as likely after a low early
  alliance (Sharf et al. 2010, d = .55);
* alliance ruptures in roughly a third of episodes (Eubanks, Muran & Safran 2018 report
  rupture markers in 19–42% of sessions; we inject at most one clear rupture per respondent),
  repaired in about 60% of cases, more often when the therapist sees the alert (Muran et al.
  2009; de Jong et al. 2021: feedback helps most for clients not on track);
* about 5–10% of clients deteriorate (Hannan et al. 2005), and a PHQ-9 item 9 above 0 in a few
  percent of sessions;
* therapists differ in outcome by a random effect of about 5–7% of the variance (Wampold &
  Brown 2005), drawn per problem domain and hidden from the engine.

Every injected event is far enough from the thresholds that the rules of
docs/clinical-rules.md either must fire (the label) or must not (the noise): session-to-session
noise on a stable alliance stays well below the reliable-change threshold and above the concern
line.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rapport.simulation_attendance import (
    Appointment,
    arrival_order,
    attended_numbers,
    draw_diary,
    missed_sessions_at,
    no_contact_at,
    session_line,
    site_zone,
)
from rapport.simulation_goals import (
    draw_goals_and_support,
    goals_not_progressing_at,
    low_support_at,
)

DOMAINS = ("depression", "anxiety", "trauma", "relationships", "substance_use")
FIRST_DAY = date(2026, 1, 5)  # a Monday; episodes start on it or up to five weeks later
START_WEEKS = 6


@dataclass(frozen=True)
class Label:
    """An event the simulator put into the data, that a rule should (or should not) report."""

    episode_id: str
    session: int
    kind: str
    respondent_id: str | None
    instrument: str | None = None


@dataclass
class SimTherapist:
    id: str
    site_id: str
    effect: dict[str, float]  # hidden outcome effect per domain (ORS points per session)
    alliance_skill: float  # shifts the level of the alliance clients report


@dataclass
class SimEpisode:
    episode_id: str
    site_id: str
    therapist_id: str
    domain: str
    couple: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    dropped_out: bool = False
    course: str = ""  # the outcome course: on_track, flat or deteriorating
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    diary: list[Appointment] = field(default_factory=list)  # every booked session
    numbers: list[int] = field(default_factory=list)  # the attended sessions' numbers

    def number(self, attended: int) -> int:
        """The session number of the ``attended``-th attended session (from 1)."""
        return self.numbers[attended - 1]

    def session_lines(self) -> list[dict[str, Any]]:
        return [
            session_line(self.episode_id, self.site_id, self.therapist_id, a) for a in self.diary
        ]

    def contacts(self) -> list[datetime]:
        return [a.at for a in self.diary if a.status == "attended"]


@dataclass
class Network:
    therapists: list[SimTherapist]
    episodes: list[SimEpisode]

    def records(self) -> list[dict[str, Any]]:
        """All questionnaire records in arrival order (by instant, then episode, then
        respondent)."""
        merged = [r for e in self.episodes for r in e.records]
        merged.sort(key=arrival_order)
        return merged

    def lines(self) -> list[dict[str, Any]]:
        """Every replay line in arrival order: each booked session's line (attended, missed,
        cancelled), then the questionnaires of an attended one, by instant."""
        merged = [line for e in self.episodes for line in (*e.session_lines(), *e.records)]
        merged.sort(key=arrival_order)
        return merged

    def time_zones(self) -> dict[str, str]:
        """Each site's IANA time zone (``rapport replay --time-zones``)."""
        return {e.site_id: e.zone.key for e in self.episodes}

    def labels(self, as_of: datetime | None = None) -> list[Label]:
        """What the rules must report: the labels drawn with the episodes, and the
        ``no_contact`` alerts a replay of :meth:`lines` opens by its last line (or by
        ``as_of``, if later)."""
        end = max(datetime.fromisoformat(line["at"]) for line in self.lines())
        if as_of is not None:
            end = max(end, as_of)
        out = [label for e in self.episodes for label in e.labels]
        for e in self.episodes:
            for session, _ in no_contact_at(e.diary, e.contacts(), e.zone, end):
                out.append(Label(e.episode_id, session, "no_contact", None))
        return out


def _srs(rng: random.Random, total: float) -> dict[str, float]:
    """Four SRS items (0–10, one decimal) summing to ``total`` (within rounding)."""
    base = total / 4
    items = [min(10.0, max(0.0, round(base + rng.uniform(-0.1, 0.1), 1))) for _ in range(3)]
    last = round(total - sum(items), 1)
    items.append(min(10.0, max(0.0, last)))
    return dict(zip(("relationship", "goals", "approach", "overall"), items, strict=True))


def _ors(rng: random.Random, total: float) -> dict[str, float]:
    total = min(40.0, max(0.0, total))
    base = total / 4
    items = [min(10.0, max(0.0, round(base + rng.uniform(-0.4, 0.4), 1))) for _ in range(3)]
    items.append(min(10.0, max(0.0, round(total - sum(items), 1))))
    return dict(zip(("individually", "interpersonally", "socially", "overall"), items, strict=True))


def _phq9(rng: random.Random, severity: int, risk: bool) -> dict[str, int]:
    """Items 1–8 summing exactly to ``severity`` (0–24); item 9 is the risk item."""
    items = [0] * 8
    for _ in range(min(24, max(0, severity))):
        open_items = [i for i, v in enumerate(items) if v < 3]
        items[rng.choice(open_items)] += 1
    return {**{str(i + 1): v for i, v in enumerate(items)}, "9": 1 if risk else 0}


def _record(
    episode: SimEpisode,
    session: int,
    respondent: str,
    respondent_id: str,
    instrument: str,
    items: dict[str, Any],
) -> dict[str, Any]:
    """A questionnaire answered at the ``session``-th attended session (its time and number
    are the booked session's)."""
    appointment = episode.diary[episode.number(session) - 1]
    return {
        "episode_id": episode.episode_id,
        "site_id": episode.site_id,
        "therapist_id": episode.therapist_id,
        "session": appointment.number,
        "at": appointment.at.isoformat(),
        "respondent": respondent,
        "respondent_id": respondent_id,
        "instrument": instrument,
        "items": items,
    }


def _alliance_path(
    rng: random.Random,
    episode: SimEpisode,
    respondent_id: str,
    sessions: int,
    level: float,
    feedback_on: bool,
    early_low: bool = False,
) -> list[float]:
    """A stable alliance (noise well inside RC, above the concern line) with at most one clear
    rupture (from session 3, so it never overlaps the early-alliance window), repaired or not.
    Labels what the rules must report for this respondent."""
    path = [level + rng.uniform(-0.6, 0.6) for _ in range(sessions)]
    if early_low:  # a weak start (Sharf et al. 2010), recovered by session 2
        path[0] = level - 8.5
        episode.labels += [
            Label(episode.episode_id, episode.number(1), "low_alliance", respondent_id),
            Label(episode.episode_id, episode.number(1), "early_alliance_risk", respondent_id),
        ]
    if sessions >= 4 and rng.random() < 0.33:
        rupture = rng.randint(3, sessions)
        depth = rng.uniform(8.0, 11.0)  # ≥ RC below baseline and previous, into concern
        repaired_at = None
        if rng.random() < (0.75 if feedback_on else 0.45):
            repaired_at = rupture + rng.randint(1, 2)
        for s in range(rupture, sessions + 1):
            if repaired_at is None or s < repaired_at:
                path[s - 1] = level - depth + rng.uniform(-0.3, 0.3)
        at = episode.number(rupture)
        episode.labels.append(Label(episode.episode_id, at, "rupture", respondent_id))
        episode.labels.append(Label(episode.episode_id, at, "low_alliance", respondent_id))
        # Unresolved at the first attended session numbered at least 3 after the rupture's
        # (missed and cancelled sessions count: they are sessions of the episode).
        late = [s for s in range(rupture + 1, sessions + 1) if episode.number(s) >= at + 3]
        if late and (repaired_at is None or repaired_at > late[0]):
            episode.labels.append(
                Label(
                    episode.episode_id, episode.number(late[0]), "unresolved_rupture", respondent_id
                )
            )
    return path


def _split_labels(episode: SimEpisode, client: list[float], partner: list[float]) -> None:
    """Rule 6 opens at the first session of each run where the two differ by ≥ RC or only one
    is in concern (the simulated values are never near either threshold)."""
    previous = False
    for s, (a, b) in enumerate(zip(client, partner, strict=True), start=1):
        split = abs(a - b) >= 5 or ((a < 36) != (b < 36))
        if split and not previous:
            episode.labels.append(
                Label(episode.episode_id, episode.number(s), "split_alliance", None)
            )
        previous = split


def simulate(
    seed: int = 7,
    episodes: int = 120,
    sites: int = 3,
    therapists: int = 12,
    max_sessions: int = 12,
    feedback_on: bool = True,
) -> Network:
    rng = random.Random(seed)
    staff = [
        SimTherapist(
            f"th-{i:03d}",
            f"site-{i % sites}",
            {d: rng.gauss(0.0, 0.35) for d in DOMAINS},
            rng.uniform(-0.2, 1.2),
        )
        for i in range(therapists)
    ]
    zones = {f"site-{k}": ZoneInfo(site_zone(k)) for k in range(sites)}
    simulated = []
    for n in range(episodes):
        therapist = staff[n % therapists]
        first_day = FIRST_DAY + timedelta(weeks=n % START_WEEKS)
        simulated.append(
            _episode(
                rng,
                f"sim-{seed}-{n:05d}",
                therapist,
                max_sessions,
                feedback_on,
                (first_day, zones[therapist.site_id]),
            )
        )
    return Network(staff, simulated)


def _episode(
    rng: random.Random,
    episode_id: str,
    therapist: SimTherapist,
    max_sessions: int,
    feedback_on: bool,
    start: tuple[date, ZoneInfo],
) -> SimEpisode:
    """One episode: its alliance path (the client's and, for a couple, the partner's), then
    its diary of booked sessions (from ``start``'s day, in its site's zone), its outcome course
    and the records of every attended session, with their labels."""
    episode = SimEpisode(
        episode_id,
        therapist.site_id,
        therapist.id,
        rng.choice(DOMAINS),
        couple=rng.random() < 0.2,
    )
    client_id, partner_id = f"{episode.episode_id}-c", f"{episode.episode_id}-p"
    early_low = rng.random() < 0.12
    sessions = rng.randint(6, max_sessions)
    if rng.random() < (0.35 if early_low else 0.17):  # drop-out (Swift & Greenberg 2012)
        sessions = rng.randint(3, 5)
        episode.dropped_out = True
    first_day, episode.zone = start
    episode.diary = draw_diary(episode_id, sessions, episode.dropped_out, first_day, episode.zone)
    episode.numbers = attended_numbers(episode.diary)
    episode.labels += [
        Label(episode_id, session, "missed_sessions", None)
        for session in missed_sessions_at(episode.diary)
    ]
    level = 38.0 + therapist.alliance_skill  # 37.8–39.2: items stay ≥ 9
    level = min(39.2, max(38.0, level))
    client_path = _alliance_path(rng, episode, client_id, sessions, level, feedback_on, early_low)
    partner_path = None
    if episode.couple:
        partner_path = _alliance_path(rng, episode, partner_id, sessions, level, feedback_on)
        _split_labels(episode, client_path, partner_path)

    course = _outcome_and_records(rng, episode, therapist, sessions, client_path, partner_path)
    episode.course = course
    _goals_and_support(episode, sessions, improving=course == "on_track")
    return episode


def _goals_and_support(episode: SimEpisode, sessions: int, improving: bool) -> None:
    """The client's goal ratings every session and support ratings now and then
    (rapport.simulation_goals), with the goals_not_progressing and low_support labels."""
    client_id = f"{episode.episode_id}-c"
    drawn = draw_goals_and_support(episode.episode_id, sessions, improving)
    for s in range(1, sessions + 1):
        episode.records.append(
            _record(episode, s, "client", client_id, "goals", drawn.goals[s - 1])
        )
        support = drawn.support[s - 1]
        if support is not None:
            items = {"support": support}
            episode.records.append(_record(episode, s, "client", client_id, "support", items))
    numbers = episode.numbers[:sessions]
    for number in goals_not_progressing_at(drawn.goals, numbers):
        episode.labels.append(
            Label(episode.episode_id, number, "goals_not_progressing", client_id, "goals")
        )
    low = low_support_at(drawn.support, numbers)
    if low is not None:
        episode.labels.append(Label(episode.episode_id, low, "low_support", client_id, "support"))


def _outcome_and_records(
    rng: random.Random,
    episode: SimEpisode,
    therapist: SimTherapist,
    sessions: int,
    client_path: list[float],
    partner_path: list[float] | None,
) -> str:
    """The outcome course (on track, flat or deteriorating), every session's records (SRS,
    ORS, PHQ-9 on odd sessions) and the labels the rules must raise; returns the course."""
    client_id, partner_id = f"{episode.episode_id}-c", f"{episode.episode_id}-p"
    # On track (≥ RC better by session 4), flat, or deteriorating.
    course = rng.choices(["on_track", "flat", "deteriorating"], [0.75, 0.18, 0.07])[0]
    clinical = rng.random() < 0.8
    first_ors = rng.uniform(12.0, 22.0) if clinical else rng.uniform(28.0, 32.0)
    ors_slope = (2.5 + therapist.effect[episode.domain]) if course == "on_track" else 0.0
    first_phq = 14
    for s in range(1, sessions + 1):
        episode.records.append(
            _record(episode, s, "client", client_id, "srs", _srs(rng, client_path[s - 1]))
        )
        if partner_path is not None:
            episode.records.append(
                _record(episode, s, "partner", partner_id, "srs", _srs(rng, partner_path[s - 1]))
            )
        ors = first_ors + (s - 1) * ors_slope + rng.uniform(-0.8, 0.8)
        phq = first_phq - round(2.5 * (s - 1)) if course == "on_track" else first_phq
        if course == "deteriorating" and s >= 3:
            ors = first_ors - 7.5 - rng.uniform(0, 1)
            phq = first_phq + 8
        if s == 1:
            ors = first_ors
        episode.records.append(_record(episode, s, "client", client_id, "ors", _ors(rng, ors)))
        if s % 2 == 1:
            risk = rng.random() < 0.03
            episode.records.append(
                _record(episode, s, "client", client_id, "phq-9", _phq9(rng, phq, risk))
            )
            if risk:
                episode.labels.append(
                    Label(episode.episode_id, episode.number(s), "risk", client_id)
                )
    if course == "deteriorating" and sessions >= 3:
        for instrument in ("ors", "phq-9"):
            episode.labels.append(
                Label(episode.episode_id, episode.number(3), "deterioration", client_id, instrument)
            )
    if course != "on_track":
        # Evaluated at the first record numbered 4 or later that is not the respondent's first:
        # the ORS of every attended session, the PHQ-9 of odd ones (its first, 14, is clinical).
        for instrument, answered, applies in (
            ("ors", range(2, sessions + 1), clinical),
            ("phq-9", range(3, sessions + 1, 2), True),
        ):
            due = [s for s in answered if episode.number(s) >= 4]
            if applies and due:
                episode.labels.append(
                    Label(
                        episode.episode_id,
                        episode.number(due[0]),
                        "not_on_track",
                        client_id,
                        instrument,
                    )
                )
    return course


def write_jsonl(records: Sequence[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def labels_jsonl(labels: Sequence[Label]) -> Iterator[str]:
    for label in labels:
        yield json.dumps(
            {
                "episode_id": label.episode_id,
                "session": label.session,
                "kind": label.kind,
                "respondent_id": label.respondent_id,
                "instrument": label.instrument,
            }
        )
