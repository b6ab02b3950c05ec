"""The chaos run: a load of feedback responses (a share with alliance drops and risk items)
submitted over HTTP while service processes are SIGKILLed and Kafka is restarted, and what the
system must have done once it drained — derived from the accepted responses with the same pure
domain code the services use (analytics' alert rules, notify's routing), never hard-coded."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.analytics import domain as alerts
from services.notify import domain as routing
from services.notify.policy import RoutingPolicy
from shared.instruments import deployment_instruments
from tests.support.system import SERVICES, NotAccepted, SystemUnderTest
from tests.support.waiting import eventually

SITES = ("site-a", "site-b")

# Every alert kind to the episode's therapist's front-end (webhook), at once; risk also to the
# clinical lead. No email or SMS contacts exist, so webhooks are all that routing implies.
# Escalation and rate limits are set out of reach of a run of a few minutes.
POLICY: dict[str, Any] = {
    "timezone": "UTC",
    "rules": [
        {
            "kinds": ["*"],
            "severities": ["urgent", "high", "routine"],
            "to": ["therapist"],
            "channels": ["webhook"],
            "mode": "immediate",
        }
    ],
    "risk": {"channels": ["webhook"], "escalate_after_seconds": 86_400},
    "invitations": {"enabled": False},
    "rate_limit": {"per_recipient_per_hour": 10_000},
}


# -- what the load submits ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    session_number: int
    instrument: str
    items: dict[str, float | int]


@dataclass
class EpisodePlan:
    site: str
    therapist: str
    answers: list[Answer]
    episode_id: str = ""


def _srs(rng: random.Random, level: float) -> dict[str, float | int]:
    return {
        item: round(min(10.0, max(0.0, level + rng.choice((-0.3, -0.1, 0.0, 0.1, 0.2)))), 1)
        for item in ("relationship", "goals", "approach", "overall")
    }


def _phq9(rng: random.Random, severity: int, risk: bool) -> dict[str, float | int]:
    items: dict[str, float | int] = {
        str(i): min(3, max(0, severity + rng.choice((-1, 0, 0, 1)))) for i in range(1, 9)
    }
    items["9"] = rng.choice((1, 2)) if risk else 0
    return items


def plan_load(responses: int, seed: int) -> list[EpisodePlan]:
    """Episodes of 6–10 sessions: every session a client SRS, every other session a PHQ-9.
    About a third of the episodes have an alliance drop (some repaired, some not), a tenth a
    low early alliance, and about one PHQ-9 in ten has a risk item (item 9) above 0."""
    rng = random.Random(seed)
    plans: list[EpisodePlan] = []
    total = 0
    while total < responses:
        number = len(plans)
        sessions = rng.randint(6, 10)
        level = rng.uniform(9.0, 9.8)
        early_low = rng.random() < 0.1
        drop_at = rng.randint(2, sessions - 1) if rng.random() < 0.35 else 0
        drop_for = rng.randint(1, 4)
        severity = rng.randint(0, 2)
        answers: list[Answer] = []
        for session in range(1, sessions + 1):
            alliance = level
            if early_low and session <= 2:
                alliance = 8.0
            if drop_at and drop_at <= session < drop_at + drop_for:
                alliance = rng.uniform(5.5, 7.0)
            answers.append(Answer(session, "srs", _srs(rng, alliance)))
            if session % 2 == 1:
                worse = severity + (1 if drop_at and session >= drop_at else 0)
                answers.append(Answer(session, "phq-9", _phq9(rng, worse, rng.random() < 0.1)))
        kept = answers[: responses - total]
        plans.append(EpisodePlan(SITES[number % len(SITES)], f"th-{number % 7}", kept))
        total += len(plans[-1].answers)
    return [p for p in plans if p.answers]


# -- running it ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A response the feedback service accepted (HTTP 2xx), with what it answered."""

    plan: EpisodePlan
    answer: Answer
    body: dict[str, Any]


async def open_episodes(system: SystemUnderTest, plans: list[EpisodePlan]) -> None:
    """Open every episode through intake and wait until feedback knows each (before chaos:
    opening an episode has no idempotency key, so it is not retried blindly)."""
    semaphore = asyncio.Semaphore(8)

    async def one(plan: EpisodePlan) -> None:
        async with semaphore:
            opened = await system.call(
                "POST",
                "intake",
                "/intake/episodes",
                json={
                    "site_id": plan.site,
                    "therapist_id": plan.therapist,
                    "client_reference": f"ref-{id(plan)}",
                },
                headers=system.auth("intake_coordinator", plan.site),
                timeout=5,
            )
            plan.episode_id = opened.json()["episode_id"]

    await asyncio.gather(*(one(p) for p in plans))
    for plan in plans:

        async def known(plan: EpisodePlan = plan) -> bool:
            try:
                await system.call(
                    "GET",
                    "feedback",
                    f"/feedback/episodes/{plan.episode_id}/responses",
                    headers=system.auth("therapist", plan.site, plan.therapist),
                )
            except NotAccepted:
                return False
            return True

        await eventually(known, timeout=120, interval=0.2, what="feedback to learn the episode")


async def submit(
    system: SystemUnderTest, plans: list[EpisodePlan], workers: int, per_second: float
) -> list[Accepted]:
    """Each episode's answers in session order (one at a time per episode, many episodes at
    once) at about ``per_second`` in all, each retried with its Idempotency-Key until the
    service accepts it."""
    queue: asyncio.Queue[EpisodePlan] = asyncio.Queue()
    for plan in plans:
        queue.put_nowait(plan)
    accepted: list[Accepted] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    slots = iter(range(10**9))

    async def worker() -> None:
        while not queue.empty():
            plan = queue.get_nowait()
            auth = system.auth("therapist", plan.site, plan.therapist)
            for answer in plan.answers:
                due = start + next(slots) / per_second
                await asyncio.sleep(max(0.0, due - loop.time()))
                key = f"{plan.episode_id}:{answer.session_number}:{answer.instrument}"
                response = await system.call(
                    "POST",
                    "feedback",
                    "/feedback/responses",
                    json={
                        "episode_id": plan.episode_id,
                        "session_number": answer.session_number,
                        "respondent_role": "client",
                        "instrument": answer.instrument,
                        "items": answer.items,
                    },
                    headers={**auth, "Idempotency-Key": key},
                )
                accepted.append(Accepted(plan, answer, response.json()))

    await asyncio.gather(*(worker() for _ in range(workers)))
    return accepted


@dataclass
class Chaos:
    """Kills a random service process every few seconds (and restarts it), and restarts Kafka
    once when ``kafka_due`` says so."""

    system: SystemUnderTest
    restart_kafka: Callable[[], None] | None
    kafka_due: Callable[[], bool]
    seed: int
    kills: Counter[str] = field(default_factory=Counter)
    kafka_restarts: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Until stopped, and at least until every service was killed once and Kafka
        restarted (if it can be): the load may end first, the drain then runs under chaos."""
        rng = random.Random(self.seed)
        order: list[str] = []
        while not (self.stopping.is_set() and self.covered()):
            await asyncio.sleep(rng.uniform(3.0, 6.0))
            kafka_due = self.kafka_due() or self.stopping.is_set()
            if self.restart_kafka is not None and not self.kafka_restarts and kafka_due:
                await asyncio.to_thread(self.restart_kafka)
                self.kafka_restarts += 1
                continue
            if not order:  # each service in turn, in a random order each round
                order = rng.sample(SERVICES, len(SERVICES))
            name = order.pop()
            process = self.system.processes[name]
            process.kill()
            self.kills[name] += 1
            await process.start()

    def covered(self) -> bool:
        kafka_done = self.restart_kafka is None or self.kafka_restarts > 0
        return kafka_done and set(self.kills) == set(SERVICES)


# -- what must have happened -------------------------------------------------------------

# episode, kind, respondent, instrument, session
AlertKey = tuple[str, str, str | None, str | None, int]
NoticeKey = tuple[str, ...]


def scored_records(accepted: Iterable[Accepted]) -> dict[str, list[alerts.ScoredRecord]]:
    """The records analytics receives, per episode in the order they were submitted."""
    episodes: dict[str, list[alerts.ScoredRecord]] = {}
    for a in accepted:
        episodes.setdefault(a.plan.episode_id, []).append(
            alerts.ScoredRecord(
                episode_id=a.plan.episode_id,
                site_id=a.plan.site,
                therapist_id=a.plan.therapist,
                session=a.answer.session_number,
                at=None,
                role="client",
                respondent_id=a.body["respondent"],
                instrument=a.answer.instrument,
                items={k: Decimal(str(v)) for k, v in a.answer.items.items()},
                total=Decimal(str(a.body["total"])),
            )
        )
    for records in episodes.values():
        records.sort(key=lambda r: r.session)  # stable: same-session answers keep their order
    return episodes


def expected_alerts(accepted: Iterable[Accepted]) -> list[alerts.AlertChange]:
    """Every alert the accepted responses imply, by analytics' own rules (default config)."""
    instruments = deployment_instruments(None)
    config = alerts.RuleConfig()
    opened: list[alerts.AlertChange] = []
    for records in scored_records(accepted).values():
        _, changes = alerts.apply_all(records, instruments, config)
        opened.extend(c for c in changes if c.action == "open")
    return opened


def alert_key(change: alerts.AlertChange) -> AlertKey:
    return (change.episode_id, change.kind, change.respondent_id, change.instrument, change.session)


def notice_key(kind: str, episode_id: str, session: int, respondent: str | None) -> NoticeKey:
    """One risk response is one notice (whether from risk.flagged or the rule-1 alert)."""
    if kind == alerts.RISK:
        return ("risk", episode_id, str(session), respondent or "")
    return ("alert", kind, episode_id, str(session), respondent or "")


def expected_notifications(
    opened: Iterable[alerts.AlertChange], risks: Iterable[Accepted], therapist_of: dict[str, str]
) -> Counter[NoticeKey]:
    """Webhook messages notify's routing implies for the site policy :data:`POLICY`: risk once
    per risk response, every other opened alert once (resolutions are not announced)."""
    policy = RoutingPolicy.model_validate(POLICY)
    expected: Counter[NoticeKey] = Counter()

    def add(key: NoticeKey, kind: str, severity: str, episode: str) -> None:
        planned = routing.plan(
            routing.route(policy, kind, severity),
            therapist_id=therapist_of[episode],
            contacts=[],
            endpoints=["the-site-endpoint"],
        )
        expected[key] += len(planned)

    for change in opened:
        if change.kind != alerts.RISK:
            key = notice_key(change.kind, change.episode_id, change.session, change.respondent_id)
            add(key, change.kind, change.severity, change.episode_id)
    for risk in risks:
        episode = risk.plan.episode_id
        key = notice_key(alerts.RISK, episode, risk.answer.session_number, risk.body["respondent"])
        add(key, alerts.RISK, "urgent", episode)
    return expected


def received_notifications(system: SystemUnderTest) -> tuple[Counter[NoticeKey], int]:
    """Distinct messages the receiver got (by ``webhook-id``), by notice, and how many calls
    were re-sends of a message already received (same ``webhook-id``: the receiver's dedupe
    key under Standard Webhooks, so not a second notification)."""
    by_id: dict[str, NoticeKey] = {}
    resent = 0
    for call in system.receiver.received:
        assert call.verified, f"unverified webhook {call.webhook_id}"
        if call.webhook_id in by_id:
            resent += 1
            continue
        data = call.body["data"]
        by_id[call.webhook_id] = notice_key(
            data["kind"], data["episode_id"], int(data["session_number"]), data.get("respondent")
        )
    return Counter(by_id.values()), resent


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 1)
