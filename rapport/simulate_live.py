"""Drive a simulated network through the services' HTTP APIs, week by week.

Sites register their therapists (``POST /intake/therapists/import``), a routing policy that
sends every alert to the therapist's front-end at once (``PUT /notify/policies/{site}``) and a
webhook (``POST /notify/webhooks``); coordinators submit each client's intake when the client
arrives (``POST /intake/intakes``) and confirm the client's choice among the explained options
(``POST /intake/matches/{id}/confirm``); therapists record each session's answers
(``POST /feedback/responses``) and close the episode when it ends (``POST
/intake/episodes/{id}/close``). Between weeks the driver waits until the services have settled
(every outbox relayed, every webhook delivered) and hands each course the alert kinds its
therapist received by webhook that week: that is what "the therapist got the alert" means here.
The therapist then records what was done about it (``POST /analytics/alerts/{id}/actions``, a
coded action: ``rapport.simulate_actions``), before the next session or after it.

The transport is any ``httpx.AsyncClient``: in-process (ASGI) for the demo, or a running
deployment's URL (``rapport simulate --live``).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from rapport.simulate import Course, Network, SimClient
from rapport.simulate_actions import plan_action
from shared.auth import mint_token
from shared.settings import Settings

# Every alert to the therapist's front-end (webhook) at once; risk also at once. The rate
# limit is raised because a simulated week passes in well under an hour of wall-clock time.
DEMO_POLICY: dict[str, Any] = {
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
    "risk": {"channels": ["webhook"], "escalate_after_seconds": 900, "escalate_to": ["supervisor"]},
    "invitations": {"enabled": False},
    "rate_limit": {"per_recipient_per_hour": 10_000},
}


# What simulated clients set as goals, in their own words (sealed by feedback, never on a topic).
GOAL_WORDS = (
    "Sleep through most nights",
    "Go back to work part-time",
    "Argue less at home",
    "Meet a friend every week",
    "Feel calm on the bus",
    "Cut down on drinking",
)


@dataclass
class Match:
    client_id: str
    match_id: str
    status: str
    summary: str
    options: list[dict[str, Any]]
    chosen: str


@dataclass
class AlertInbox:
    """The clinics' front-end: every verified webhook lands here (see ``rapport.demo``)."""

    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0

    def opened_alerts(self) -> list[dict[str, Any]]:
        found = []
        for body in self.received:
            data = body.get("data", body)
            if "kind" in data and "episode_id" in data and data.get("status", "opened") == "opened":
                found.append(data)
        return found


@dataclass
class LiveRun:
    """What the live run did, for the summary and the report."""

    matches: list[Match] = field(default_factory=list)
    courses: dict[str, Course] = field(default_factory=dict)  # by episode id
    episode_of: dict[str, str] = field(default_factory=dict)  # client id → episode id
    unmatched: list[str] = field(default_factory=list)
    alerts_by_week: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    responses: int = 0
    requests: int = 0
    actions: Counter[str] = field(default_factory=Counter)  # recorded, by action code
    actions_refused: int = 0  # on an alert a clinician had closed meanwhile (409)
    goal_ids: dict[str, dict[str, str]] = field(default_factory=dict)  # episode → name → id

    def assignment(self) -> dict[str, str]:
        return {m.client_id: m.chosen for m in self.matches}


Progress = Callable[[str, int], None]


class LiveDriver:
    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        network: Network,
        inbox: AlertInbox,
        settle: Callable[[], Awaitable[None]],
        progress: Progress | None = None,
        concurrency: int = 8,
    ) -> None:
        self.http = http
        self.settings = settings
        self.network = network
        self.inbox = inbox
        self.settle = settle
        self.progress = progress or (lambda _what, _n: None)
        self.run = LiveRun()
        self._tokens: dict[tuple[str, str, str], dict[str, str]] = {}
        self._limit = asyncio.Semaphore(concurrency)
        self._seen_webhooks = 0
        self.webhook_ids: set[str] = set()  # this run's endpoints
        # week → the actions to record that week: (alert, code)
        self._actions_due: dict[int, list[tuple[dict[str, Any], str]]] = defaultdict(list)

    def auth(self, role: str, site: str, sub: str = "simulator") -> dict[str, str]:
        key = (role, site, sub)
        if key not in self._tokens:
            token = mint_token(self.settings, sub, role, [site])
            self._tokens[key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[key]

    async def _call(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        *,
        none_on: int | None = None,
    ) -> Any:
        async with self._limit:
            response = await self.http.request(method, url, headers=headers, json=body)
        self.run.requests += 1
        if none_on is not None and response.status_code == none_on:
            return None
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {url} → {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    async def set_up_sites(self, webhook_url: Callable[[str], str] | None) -> dict[str, str]:
        """Register therapists, the demo routing policy and (optionally) a webhook per site;
        returns each site's webhook secret."""
        secrets: dict[str, str] = {}
        for site in self.network.sites:
            admin = self.auth("site_admin", site.id)
            records = [t.registry_record() for t in self.network.therapists if t.site_id == site.id]
            await self._call("POST", "/intake/therapists/import", admin, records)
            await self._call("PUT", f"/notify/policies/{site.id}", admin, DEMO_POLICY)
            if webhook_url is not None:
                hook = await self._call(
                    "POST",
                    "/notify/webhooks",
                    admin,
                    {"site_id": site.id, "url": webhook_url(site.id)},
                )
                secrets[site.id] = hook["secret"]
                self.webhook_ids.add(hook["id"])
        return secrets

    async def _admit(self, client: SimClient) -> None:
        coordinator = self.auth("intake_coordinator", client.site_id)
        intake = await self._call(
            "POST", "/intake/intakes", coordinator, client.intake_request(), none_on=409
        )
        if intake is None:  # nobody can be offered at all (409 naming the reasons)
            self.run.unmatched.append(client.id)
            return
        match = intake["match"]
        options = match["options"]
        fitting = [o for o in options if not o.get("violated")] or options
        if not fitting:
            self.run.unmatched.append(client.id)
            return
        # Shared decision: the client takes the first option offered.
        chosen = fitting[0]["therapist_id"]
        episode = await self._call(
            "POST",
            f"/intake/matches/{match['match_id']}/confirm",
            coordinator,
            {"therapist_id": chosen},
        )
        self.run.matches.append(
            Match(client.id, match["match_id"], match["status"], match["summary"], options, chosen)
        )
        episode_id = episode["episode_id"]
        self.run.episode_of[client.id] = episode_id
        self.run.courses[episode_id] = Course(
            self.network.seed, client, self.network.therapist(chosen)
        )

    async def _attend(self, episode_id: str, course: Course, received: frozenset[str]) -> None:
        therapist = self.auth("therapist", course.client.site_id, course.therapist.id)
        result = course.session(received)
        for answer in result.answers:
            body: dict[str, Any] = {
                "episode_id": episode_id,
                "session_number": result.session_number,
                "respondent_role": answer.respondent_role,
                "instrument": answer.instrument,
                "items": dict(answer.items),
            }
            if answer.respondent_role == "partner":
                body["respondent_ref"] = course.client.partner_reference
            if answer.instrument == "goals":
                body["items"] = await self._goal_items(episode_id, course, answer.items)
            await self._call("POST", "/feedback/responses", therapist, body)
            self.run.responses += 1
        if result.ended is not None:
            await self._call(
                "POST", f"/intake/episodes/{episode_id}/close", therapist, {"reason": result.ended}
            )
        self.progress("session", 1)

    async def _goal_items(
        self, episode_id: str, course: Course, ratings: Mapping[str, float]
    ) -> dict[str, float]:
        """The goal ratings keyed by the goals' ids: at the first rating the client's goals are
        set in their own words (``POST /feedback/episodes/{id}/goals``, by the therapist)."""
        ids = self.run.goal_ids.setdefault(episode_id, {})
        therapist = self.auth("therapist", course.client.site_id, course.therapist.id)
        for name in ratings:
            if name not in ids:
                text = GOAL_WORDS[(len(ids) + len(episode_id)) % len(GOAL_WORDS)]
                body = {"text": text}
                goal = await self._call(
                    "POST", f"/feedback/episodes/{episode_id}/goals", therapist, body
                )
                ids[name] = goal["goal_id"]
        return {ids[name]: value for name, value in ratings.items()}

    def _collect(self, week: int) -> dict[str, set[str]]:
        """The alert kinds each episode's therapist received by webhook since the last look."""
        fresh = self.inbox.received[self._seen_webhooks :]
        self._seen_webhooks = len(self.inbox.received)
        by_episode: dict[str, set[str]] = defaultdict(set)
        for alert in AlertInbox(fresh).opened_alerts():
            by_episode[alert["episode_id"]].add(alert["kind"])
            self.run.alerts_by_week[week][alert["kind"]] += 1
            course = self.run.courses.get(alert["episode_id"])
            planned = (
                None
                if course is None or "alert_id" not in alert
                else plan_action(self.network.seed, course.client.id, alert["kind"], week)
            )
            if planned is not None:
                self._actions_due[week + planned.delay_weeks].append((alert, planned.code))
        return by_episode

    async def _record_actions(self, week: int) -> None:
        """The therapists record what they did about the alerts due this week."""
        due = self._actions_due.pop(week, [])
        await asyncio.gather(*(self._act(alert, code) for alert, code in due))

    async def _analytics_alert_id(
        self, alert: dict[str, Any], therapist: dict[str, str]
    ) -> str | None:
        """The alert's id in analytics: the webhook's, except for a risk (notify tells it at
        once from feedback's ``risk.flagged``, named by the response): analytics' risk alert of
        the same episode and session."""
        if alert["kind"] != "risk":
            return str(alert["alert_id"])
        params = {
            "site_id": alert["site_id"],
            "kind": "risk",
            "status": "all",
            "therapist_id": alert["therapist_id"],
            "limit": 500,
        }
        async with self._limit:
            found = await self.http.get("/analytics/alerts", headers=therapist, params=params)
        self.run.requests += 1
        found.raise_for_status()
        for row in found.json():
            if (row["episode_id"], row["opened_session"]) == (
                alert["episode_id"],
                alert.get("session_number"),
            ):
                return str(row["alert_id"])
        return None

    async def _act(self, alert: dict[str, Any], code: str) -> None:
        course = self.run.courses[alert["episode_id"]]
        who = alert.get("therapist_id", course.therapist.id)
        therapist = self.auth("therapist", course.client.site_id, who)
        alert_id = await self._analytics_alert_id(alert, therapist)
        if alert_id is None:
            return
        headers = {**therapist, "Idempotency-Key": f"sim-{alert_id}"}
        url = f"/analytics/alerts/{alert_id}/actions"
        recorded = await self._call("POST", url, headers, {"code": code}, none_on=409)
        if recorded is None:
            self.run.actions_refused += 1
        else:
            self.run.actions[code] += 1

    async def run_weeks(self) -> LiveRun:
        arrivals: dict[int, list[SimClient]] = defaultdict(list)
        for client in self.network.clients:
            arrivals[client.arrival_week].append(client)
        pending: dict[str, set[str]] = defaultdict(set)
        for week in range(1, self.network.weeks + 1):
            active = [(e, c) for e, c in self.run.courses.items() if c.ended is None]
            sessions = []
            for episode_id, course in active:
                received = frozenset(pending.pop(episode_id, set()))
                sessions.append(self._attend(episode_id, course, received))
            await asyncio.gather(*sessions)
            await self._record_actions(week)  # those left until after this session
            for client in arrivals.get(week, []):
                await self._admit(client)
                self.progress("intake", 1)
            await self.settle()
            for episode_id, kinds in self._collect(week).items():
                pending[episode_id] |= kinds
            await self._record_actions(week)  # those recorded before the next session
            self.progress("week", week)
        for week in sorted(self._actions_due):  # after the last week: the late ones
            await self._record_actions(week)
        await self.settle()
        return self.run
