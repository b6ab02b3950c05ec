"""A simulated counselling network whose clients answer session by session.

Pure: no I/O. ``build_network`` draws sites, therapists (with a hidden effectiveness per
problem domain, a hidden alliance-building skill and a hidden repair skill) and clients (problem
domain, intake severity, preferences, couples with a partner). ``Course`` walks one client's
episode with one therapist one session at a time: each call to ``Course.session`` takes the
alert kinds the therapist has *received* for this episode since the last session and returns the
session's answers (SRS for alliance, ORS for outcome, PHQ-9 now and then) and what happened
(rupture, repair, split, drop-out, end). A therapist who is told about a rupture repairs it
more often; one told that a client is not on track changes course more often; one told about a
weak early alliance loses fewer clients. Whoever drives the course decides what "received"
means: the demo uses the webhooks the real notify service delivered; the counterfactual arms use
none (alerts off) or the same rules run offline.

Deterministic by seed, with common random numbers: every draw of client ``c`` at session ``s``
comes from its own generator seeded by ``(seed, c, s)`` and is drawn whether or not it is used,
so the same client meets the same luck under every arm and the arms differ only by what the
arm changes (the therapist, or whether alerts arrive).

Parameters and their sources (docs/clinical-rules.md; docs/simulation.md has the full table):

* alliance–outcome association r ≈ .28 (Flückiger et al. 2018): each SRS point above 36 adds
  ``ALLIANCE_GAIN`` ORS points of progress per session;
* therapists explain about 5–7% of outcome variance (Wampold & Brown 2005; Schiefele et al.
  2017): per-domain effects ``N(0, THERAPIST_EFFECT_SD)`` ORS points per session, a little
  better in declared specialties (the Match trial, Constantino et al. 2021, profiles per domain);
* ruptures in about a third of episodes (Eubanks, Muran & Safran 2018: markers in 19–42% of
  sessions); repair more likely when the therapist attends to it (Muran et al. 2009; Safran et
  al. 2011: rupture-repair training, r ≈ .29 between repair and outcome);
* feedback helps clients who are not on track most (de Jong et al. 2021: d = .17 NOT vs .15
  overall; Lambert et al. 2018: deterioration roughly halved with alerts);
* base drop-out about 20% (Swift & Greenberg 2012), higher after a weak early alliance (Sharf
  et al. 2010: d = .55, odds ratio ≈ 2.7);
* 5–10% of clients deteriorate (Hannan et al. 2005);
* accommodating stated preferences: fewer drop-outs (OR ≈ 1.8) and better outcome (d ≈ .28)
  (Swift et al. 2018), modelled as a higher alliance when the preference is met.

Over 500 lines: the client's course (alliance, outcome, rupture and repair, drop-out) is one
model whose parts share its parameters; splitting it would spread the model's assumptions.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from rapport.simulate_goals import ClientGoals

DOMAINS: tuple[str, ...] = (
    "depression",
    "anxiety",
    "trauma",
    "relationship",
    "grief",
    "substance_use",
)
DOMAIN_WEIGHTS = (0.32, 0.28, 0.12, 0.12, 0.08, 0.08)
DOMAIN_SCOPES = {"trauma": "trauma", "substance_use": "substance_use"}
MODALITIES = ("cbt", "act", "psychodynamic", "person_centred", "emdr", "systemic", "ipt")
LANGUAGES = ("en", "es")
GENDERS = ("woman", "man")
# Weekly slots: clinics open Monday–Friday 09:00–18:00 (site local time).
WEEKDAY_HOURS = [{"day": d, "start_minute": 9 * 60, "end_minute": 18 * 60} for d in range(5)]

# --- parameters (see the module docstring and docs/simulation.md for their sources) ---------
SRS_BASE = 37.2  # typical client SRS total; concern below 36 (docs/clinical-rules.md)
SRS_NOISE = 0.8  # session-to-session SD of a stable alliance (well inside RC 5)
CLIENT_ALLIANCE_SD = 1.3  # clients differ in how they rate any therapist
THERAPIST_ALLIANCE_SD = 1.0  # therapists differ in alliance-building skill
PREFERENCE_BONUS = 0.9  # SRS points when the stated gender/language preference is met
RUPTURE_HAZARD = 0.055  # per session, from session 2; about a third of episodes
RUPTURE_DEPTH = (6.0, 10.0)  # SRS points: at least RC (5) below the baseline
REPAIR_UNSEEN = 0.22  # per session, when the therapist has not been told
REPAIR_SEEN = 0.55  # per session, once a rupture or low-alliance alert reached the therapist
SPLIT_SHARE = 0.35  # couples whose partner's alliance parts from the client's
SPLIT_MEND_UNSEEN, SPLIT_MEND_SEEN = 0.12, 0.40
THERAPIST_EFFECT_SD = 0.35  # ORS points per session, per problem domain
SPECIALTY_BONUS = 0.15  # ORS points per session in a declared specialty
ALLIANCE_GAIN = 0.10  # ORS points per session per SRS point above 36
BASE_GAIN = 0.9  # ORS points per session for an average client with an average therapist
ORS_NOISE = 1.4
DETERIORATING_SHARE = 0.08  # Hannan et al. 2005
DETERIORATION_STEP = -1.1  # ORS points per session while deteriorating
CHANGE_COURSE_UNSEEN, CHANGE_COURSE_SEEN = 0.06, 0.35  # a deteriorating course turns around
DROPOUT_HAZARD = 0.018  # per session
DROPOUT_EARLY_LOW = 2.7  # odds multiplier after a weak early alliance (Sharf et al. 2010)
DROPOUT_RUPTURE = 2.0  # while a rupture stays unrepaired
DROPOUT_PREFERENCE_UNMET = 1.8  # Swift et al. 2018
DROPOUT_ADDRESSED = 0.55  # once an early-alliance or drop-out alert reached the therapist
RISK_SHARE = 0.03  # PHQ-9 item 9 above 0, per PHQ-9 answered
RUPTURE_ALERTS = frozenset({"rupture", "low_alliance", "unresolved_rupture", "early_alliance_risk"})
EARLY_ALERTS = frozenset({"early_alliance_risk", "dropout_risk", "low_alliance"})
OFF_TRACK_ALERTS = frozenset({"not_on_track", "deterioration", "rematch_suggested"})
SPLIT_ALERTS = frozenset({"split_alliance"})
PHQ_SESSIONS = frozenset({1, 4, 8, 12, 16})
CONCERN = 36.0
ORS_CUTOFF = 25.0
ORS_RC = 5.0


@dataclass(frozen=True)
class SimSite:
    id: str
    name: str


@dataclass(frozen=True)
class SimTherapist:
    id: str
    site_id: str
    gender: str
    languages: tuple[str, ...]
    domains: tuple[str, ...]  # declared specialties
    scopes: tuple[str, ...]
    modalities: tuple[str, ...]
    capacity: int
    years_experience: float
    telehealth: bool
    # hidden from the engine
    effect: Mapping[str, float]  # ORS points per session, per problem domain
    alliance_skill: float  # SRS points
    repair_skill: float  # multiplies the repair chance

    def registry_record(self) -> dict[str, Any]:
        """What a site admin registers (POST /intake/therapists/import): no hidden traits."""
        return {
            "id": self.id,
            "sites": [self.site_id],
            "languages": list(self.languages),
            "capacity": self.capacity,
            "caseload": 0,
            "gender": self.gender,
            "modalities": list(self.modalities),
            "scopes": list(self.scopes),
            "domains": list(self.domains),
            "telehealth": self.telehealth,
            "availability": WEEKDAY_HOURS,
            "years_experience": self.years_experience,
        }


@dataclass(frozen=True)
class SimClient:
    id: str  # the clinic's own reference (never published)
    site_id: str
    arrival_week: int
    domain: str
    severity: Literal["mild", "moderate", "severe"]
    language: str
    gender_preference: str | None
    couple: bool
    intake_ors: float
    alliance_propensity: float  # hidden: how this client rates any therapist
    responsiveness: float  # hidden: how fast this client changes
    deteriorating: bool  # hidden: on a worsening course unless the therapist changes it
    planned_sessions: int

    def intake_request(self) -> dict[str, Any]:
        """What a coordinator submits (POST /intake/intakes)."""
        preferences: dict[str, Any] = {}
        if self.gender_preference is not None:
            preferences["gender"] = {"codes": [self.gender_preference], "strength": "preferred"}
        body: dict[str, Any] = {
            "site_id": self.site_id,
            "client_reference": self.id,
            "domains": [{"code": self.domain, "severity": self.severity}],
            "languages": [self.language],
            "unit": "couple" if self.couple else "individual",
            "preferences": preferences,
        }
        if self.couple:
            body["members"] = [{"reference": self.partner_reference, "role": "partner"}]
        return body

    @property
    def partner_reference(self) -> str:
        return f"{self.id}-partner"


@dataclass(frozen=True)
class Network:
    seed: int
    weeks: int
    sites: tuple[SimSite, ...]
    therapists: tuple[SimTherapist, ...]
    clients: tuple[SimClient, ...]

    def therapist(self, therapist_id: str) -> SimTherapist:
        return self._by_id[therapist_id]

    @cached_property
    def _by_id(self) -> dict[str, SimTherapist]:
        return {t.id: t for t in self.therapists}


def build_network(
    seed: int = 7, sites: int = 3, therapists: int = 30, clients: int = 300, weeks: int = 16
) -> Network:
    """Draw a network. Clients arrive over the first half of the period (at least one week
    before the end), at the sites in turn; every site has therapists for every client."""
    if sites < 1 or therapists < sites or clients < 1 or weeks < 2:
        raise ValueError("need at least one site, one therapist per site, a client, two weeks")
    rng = random.Random(f"network:{seed}")
    site_list = tuple(SimSite(f"site-{n + 1}", f"Clinic {chr(65 + n % 26)}") for n in range(sites))
    staff: list[SimTherapist] = []
    for n in range(therapists):
        site = site_list[n % sites]
        specialties = tuple(sorted(set(rng.choices(DOMAINS, DOMAIN_WEIGHTS, k=2))))
        # Every site needs couples and trauma/substance-use competence somewhere.
        scopes = {"adults"}
        if n % 3 == 0 or "relationship" in specialties:
            scopes.add("couples")
        scopes |= {DOMAIN_SCOPES[d] for d in specialties if d in DOMAIN_SCOPES}
        if n // sites % 2 == 0:
            scopes |= {"trauma", "substance_use"}
        effect = {
            d: rng.gauss(0.0, THERAPIST_EFFECT_SD) + (SPECIALTY_BONUS if d in specialties else 0)
            for d in DOMAINS
        }
        staff.append(
            SimTherapist(
                id=f"th-{n + 1:03d}",
                site_id=site.id,
                gender=GENDERS[n % 2],
                languages=("en", "es") if n % 4 == 1 else ("en",),
                domains=specialties,
                scopes=tuple(sorted(scopes)),
                modalities=tuple(sorted(set(rng.sample(MODALITIES, 2)))),
                capacity=max(4, round(clients / therapists * 1.5)),
                years_experience=round(rng.uniform(1, 25), 1),
                telehealth=rng.random() < 0.5,
                effect=effect,
                alliance_skill=rng.gauss(0.0, THERAPIST_ALLIANCE_SD),
                repair_skill=rng.uniform(0.7, 1.3),
            )
        )
    people: list[SimClient] = []
    last_arrival = max(1, min(weeks // 2, weeks - 1))
    for n in range(clients):
        domain = rng.choices(DOMAINS, DOMAIN_WEIGHTS)[0]
        couple = domain == "relationship" and rng.random() < 0.6
        clinical = rng.random() < 0.8
        intake_ors = rng.uniform(9.0, 23.5) if clinical else rng.uniform(25.5, 31.0)
        severity: Literal["mild", "moderate", "severe"] = (
            "severe" if intake_ors < 14 else "moderate" if intake_ors < 22 else "mild"
        )
        people.append(
            SimClient(
                id=f"client-{seed}-{n + 1:04d}",
                site_id=site_list[n % sites].id,
                arrival_week=1 + n * last_arrival // clients,
                domain=domain,
                severity=severity,
                language="es" if rng.random() < 0.12 else "en",
                gender_preference=rng.choice(GENDERS) if rng.random() < 0.3 else None,
                couple=couple,
                intake_ors=round(intake_ors, 1),
                alliance_propensity=rng.gauss(0.0, CLIENT_ALLIANCE_SD),
                responsiveness=max(0.2, rng.gauss(1.0, 0.3)),
                deteriorating=rng.random() < DETERIORATING_SHARE,
                planned_sessions=rng.randint(8, 16),
            )
        )
    return Network(seed, weeks, site_list, tuple(staff), tuple(people))


# --- one episode, session by session ----------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One questionnaire answered at a session (the body of POST /feedback/responses)."""

    respondent_role: Literal["client", "partner"]
    instrument: str
    items: Mapping[str, float]


@dataclass(frozen=True)
class SessionResult:
    session_number: int
    answers: tuple[Answer, ...]
    client_srs: float
    partner_srs: float | None
    ors: float
    rupture_started: bool
    rupture_repaired: bool
    split_started: bool
    risk: bool
    ended: Literal["completed", "dropped_out"] | None


@dataclass
class Course:
    """One client's episode with one therapist. Call ``session`` once per week."""

    seed: int
    client: SimClient
    therapist: SimTherapist
    session_number: int = 0
    ors: float = 0.0
    rupture_depth: float = 0.0  # > 0 while a rupture is open
    rupture_known: bool = False
    ruptures: int = 0
    repairs: int = 0
    repairs_after_alert: int = 0
    split_gap: float = 0.0
    split_known: bool = False
    splits: int = 0
    early_low: bool = False
    early_addressed: bool = False
    off_track_known: bool = False
    deteriorating: bool = False
    risk_answers: int = 0
    alerts_received: int = 0
    ended: str | None = None
    history: list[SessionResult] = field(default_factory=list)
    goals: ClientGoals = field(init=False)

    def __post_init__(self) -> None:
        self.ors = self.client.intake_ors
        self.deteriorating = self.client.deteriorating
        self.goals = ClientGoals.draw(self.seed, self.client.id)

    @property
    def preference_met(self) -> bool:
        c, t = self.client, self.therapist
        gender_ok = c.gender_preference is None or c.gender_preference == t.gender
        return gender_ok and c.language in t.languages

    def session(self, received: Iterable[str] = ()) -> SessionResult:
        """The next session, given the alert kinds the therapist received since the last one."""
        if self.ended is not None:
            raise RuntimeError(f"the episode of {self.client.id} has ended")
        self._take_in(frozenset(received))
        self.session_number += 1
        s = self.session_number
        # Common random numbers: the same draws for this client and session under every arm.
        rng = random.Random(f"session:{self.seed}:{self.client.id}:{s}")
        u_rupture, u_depth, u_repair = rng.random(), rng.random(), rng.random()
        u_split, u_mend, u_turn, u_drop, u_risk = (rng.random() for _ in range(5))
        z_srs, z_partner, z_ors = rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)

        started, repaired = self._rupture_or_repair(s, u_rupture, u_depth, u_repair)
        srs, partner, split_started = self._alliance(s, u_split, u_mend, u_depth, z_srs, z_partner)
        self._progress(s, srs, partner, u_turn, z_ors)
        answers, risk = self._answers(rng, s, srs, partner, u_risk)
        ended = self._ending(s, started, u_drop)
        self.ended = ended
        result = SessionResult(
            s,
            answers,
            srs,
            partner,
            self.ors,
            started,
            repaired,
            split_started,
            risk,
            ended,
        )
        self.history.append(result)
        return result

    def _take_in(self, kinds: frozenset[str]) -> None:
        """What the therapist learns from the alerts received since the last session."""
        self.alerts_received += len(kinds)
        self.rupture_known |= bool(kinds & RUPTURE_ALERTS) and self.rupture_depth > 0
        self.split_known |= bool(kinds & SPLIT_ALERTS) and self.split_gap > 0
        self.early_addressed |= bool(kinds & EARLY_ALERTS)
        self.off_track_known |= bool(kinds & OFF_TRACK_ALERTS)

    def _rupture_or_repair(
        self, s: int, u_rupture: float, u_depth: float, u_repair: float
    ) -> tuple[bool, bool]:
        """An open rupture may be repaired (likelier when the therapist knows of it), else one
        may start; (started, repaired)."""
        t = self.therapist
        if self.rupture_depth > 0:
            chance = (REPAIR_SEEN if self.rupture_known else REPAIR_UNSEEN) * t.repair_skill
            if u_repair < chance:
                self.rupture_depth = 0.0
                self.repairs += 1
                self.repairs_after_alert += self.rupture_known
                self.rupture_known = False
                return False, True
        elif s >= 2 and u_rupture < RUPTURE_HAZARD * (1.4 if t.alliance_skill < 0 else 1.0):
            low, high = RUPTURE_DEPTH
            self.rupture_depth = low + (high - low) * u_depth
            self.ruptures += 1
            return True, False
        return False, False

    def _alliance(
        self, s: int, u_split: float, u_mend: float, u_depth: float, z_srs: float, z_partner: float
    ) -> tuple[float, float | None, bool]:
        """The client's SRS and, for a couple, the partner's (a split may start or mend);
        (srs, partner, split_started)."""
        c, t = self.client, self.therapist
        split_started = False
        level = (
            SRS_BASE
            + t.alliance_skill
            + c.alliance_propensity
            + (PREFERENCE_BONUS if self.preference_met else -PREFERENCE_BONUS / 2)
            + 0.15 * min(s - 1, 5)  # alliances usually strengthen early on
        )
        srs = _clip(level - self.rupture_depth + SRS_NOISE * z_srs, 0.0, 40.0)
        partner: float | None = None
        if c.couple:
            if self.split_gap > 0:
                if u_mend < (SPLIT_MEND_SEEN if self.split_known else SPLIT_MEND_UNSEEN):
                    self.split_gap = 0.0
                    self.split_known = False
            elif s >= 3 and u_split < SPLIT_SHARE / 6:
                self.split_gap = 6.0 + 3.0 * u_depth
                split_started = True
                self.splits += 1
            partner = _clip(level - self.split_gap + SRS_NOISE * z_partner, 0.0, 40.0)
        if s <= 2 and srs < CONCERN:
            self.early_low = True
        return srs, partner, split_started

    def _progress(
        self, s: int, srs: float, partner: float | None, u_turn: float, z_ors: float
    ) -> None:
        """The outcome (ORS) after this session: a deteriorating course may turn (likelier
        when the therapist knows), else progress follows the alliance."""
        c, t = self.client, self.therapist
        if self.deteriorating and u_turn < (
            CHANGE_COURSE_SEEN if self.off_track_known else CHANGE_COURSE_UNSEEN
        ):
            self.deteriorating = False
        if s > 1:
            if self.deteriorating:
                gain = DETERIORATION_STEP
            else:
                alliance = (srs + partner) / 2 if partner is not None else srs
                gain = c.responsiveness * (
                    BASE_GAIN + t.effect[c.domain] + ALLIANCE_GAIN * (alliance - CONCERN)
                )
                gain *= max(0.0, (38.0 - self.ors) / 20.0)  # less room near the ceiling
                if self.rupture_depth > 0:
                    gain = min(gain, 0.0) - 0.3
            self.ors = _clip(self.ors + gain + ORS_NOISE * z_ors, 0.0, 40.0)

    def _answers(
        self, rng: random.Random, s: int, srs: float, partner: float | None, u_risk: float
    ) -> tuple[tuple[Answer, ...], bool]:
        """The questionnaires answered this session (SRS, the partner's SRS, ORS, PHQ-9 on
        its sessions); (answers, a risk answer given)."""
        c = self.client
        answers = [Answer("client", "srs", _srs_items(rng, srs))]
        if partner is not None:
            answers.append(Answer("partner", "srs", _srs_items(rng, partner)))
        answers.append(Answer("client", "ors", _ors_items(rng, self.ors)))
        risk = False
        if s in PHQ_SESSIONS and c.domain in {"depression", "anxiety", "grief"}:
            risk = u_risk < RISK_SHARE
            self.risk_answers += risk
            phq = round(_clip((40.0 - self.ors) * 0.62, 0, 24))
            answers.append(Answer("client", "phq-9", _phq9_items(rng, phq, risk)))
        answers += self._goal_answers(s)
        return tuple(answers), risk

    def _goal_answers(self, s: int) -> list[Answer]:
        """The client's goal ratings (by goal name: the driver maps them to the goals' ids)
        and, on its sessions, the support rating (rapport.simulate_goals)."""
        gain = self.ors - self.client.intake_ors
        answers = [Answer("client", "goals", self.goals.ratings(s, gain))]
        support = self.goals.support(s)
        if support is not None:
            answers.append(Answer("client", "support", {"support": support}))
        return answers

    def _ending(
        self, s: int, rupture_started: bool, u_drop: float
    ) -> Literal["completed", "dropped_out"] | None:
        """Whether the episode ends with this session: a drop-out (its odds raised by a low
        early alliance, an open rupture, an unmet preference) or completion."""
        c = self.client
        odds = DROPOUT_HAZARD / (1 - DROPOUT_HAZARD)
        if self.early_low:
            odds *= DROPOUT_EARLY_LOW * (DROPOUT_ADDRESSED if self.early_addressed else 1.0)
        if self.rupture_depth > 0 and not rupture_started:
            odds *= DROPOUT_RUPTURE
        if not self.preference_met:
            odds *= DROPOUT_PREFERENCE_UNMET
        if u_drop < odds / (1 + odds) and s < c.planned_sessions:
            return "dropped_out"
        if s >= c.planned_sessions or (s >= 6 and self.ors >= 33.0):
            return "completed"
        return None

    def outcome(self) -> ClientOutcome:
        first, last = self.client.intake_ors, self.ors
        change = last - first
        return ClientOutcome(
            client_id=self.client.id,
            therapist_id=self.therapist.id,
            sessions=self.session_number,
            dropped_out=self.ended == "dropped_out",
            reliable_improvement=change >= ORS_RC,
            recovered=first < ORS_CUTOFF and last >= ORS_CUTOFF and change >= ORS_RC,
            deteriorated=change <= -ORS_RC,
            ors_change=round(change, 1),
            ruptures=self.ruptures,
            repairs=self.repairs,
        )


@dataclass(frozen=True)
class ClientOutcome:
    client_id: str
    therapist_id: str
    sessions: int
    dropped_out: bool
    reliable_improvement: bool
    recovered: bool  # reliable and clinically significant (Jacobson & Truax 1991) on the ORS
    deteriorated: bool
    ors_change: float
    ruptures: int
    repairs: int


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _srs_items(rng: random.Random, total: float) -> dict[str, float]:
    """Four SRS items (0–10, one decimal) summing to ``total`` (within rounding)."""
    base = _clip(total, 0, 40) / 4
    items = [_clip(round(base + rng.uniform(-0.15, 0.15), 1), 0, 10) for _ in range(3)]
    items.append(_clip(round(total - sum(items), 1), 0, 10))
    return dict(zip(("relationship", "goals", "approach", "overall"), items, strict=True))


def _ors_items(rng: random.Random, total: float) -> dict[str, float]:
    base = _clip(total, 0, 40) / 4
    items = [_clip(round(base + rng.uniform(-0.5, 0.5), 1), 0, 10) for _ in range(3)]
    items.append(_clip(round(total - sum(items), 1), 0, 10))
    return dict(zip(("individually", "interpersonally", "socially", "overall"), items, strict=True))


def _phq9_items(rng: random.Random, severity: int, risk: bool) -> dict[str, int]:
    items = [0] * 8
    for _ in range(min(24, max(0, severity))):
        open_items = [i for i, v in enumerate(items) if v < 3]
        items[rng.choice(open_items)] += 1
    return {**{str(i + 1): v for i, v in enumerate(items)}, "9": 1 if risk else 0}


# --- assignment without matching ----------------------------------------------------------------


def first_available(network: Network, order: Sequence[SimClient] | None = None) -> dict[str, str]:
    """Assignment as usual: each client, in order of arrival, goes to the first therapist on
    the site's list who has a place left, speaks the client's language and is competent for
    the unit (couples) — no regard for track record or preferences. Places are never freed
    (an upper bound on the load, like a waiting list allocated at once)."""
    load: dict[str, int] = {t.id: 0 for t in network.therapists}
    chosen: dict[str, str] = {}
    for client in order or network.clients:
        for t in network.therapists:
            if (
                t.site_id == client.site_id
                and load[t.id] < t.capacity
                and client.language in t.languages
                and (not client.couple or "couples" in t.scopes)
                and (client.domain not in DOMAIN_SCOPES or DOMAIN_SCOPES[client.domain] in t.scopes)
            ):
                chosen[client.id] = t.id
                load[t.id] += 1
                break
    return chosen
