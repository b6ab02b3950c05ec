"""What notify's tests talk to: a real SMTP server (aiosmtpd), scripted webhook endpoints and an
SMS provider (each request checked with the independent ``standardwebhooks`` package), and a
Kafka producer of ready-made events."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.contracts import (
    ALLIANCE_ALERT,
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    MATCH_PROPOSED,
    RISK_FLAGGED,
    SESSION_COMPLETED,
    AllianceAlert,
    EpisodeMember,
    FeedbackRecorded,
    MatchConfirmed,
    MatchOption,
    MatchProposed,
    RiskFlagged,
    SessionCompleted,
)
from shared.events import Event, encode
from shared.settings import Settings
from tests.support.processes import ServiceProcess, service_env
from tests.support.receiver import _free_port
from tests.support.waiting import eventually

# -- SMTP ---------------------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


class SmtpSink:
    """A real SMTP server on loopback that keeps every message it accepts."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.port = _free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        self.mails.append(
            Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message_from_bytes(content))
        )
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.recipients]


# -- webhook endpoints and an SMS provider --------------------------------------------------------


@dataclass
class Call:
    endpoint: str
    webhook_id: str
    body: dict[str, Any]
    verified_with: list[int]  # indexes of the endpoint's secrets that verify the signature
    status: int
    at: float


@dataclass
class Behaviour:
    fail_first: int = 0  # answer 500 to the first N calls
    status: int | None = None  # always answer this (e.g. 410)
    delay: float = 0.0  # wait this long before answering ...
    delay_calls: int = 1_000_000  # ... the first N calls
    fail_ratio: float = 0.0  # answer 500 to this share of calls, at random


@dataclass
class Endpoints:
    """Webhook endpoints ``/hooks/{name}`` and an SMS provider at ``/sms``."""

    secrets: dict[str, list[str]] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    sms: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 7

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/hooks/{name}", self._hook, methods=["POST"]),
                Route("/sms", self._sms, methods=["POST"]),
            ]
        )
        self.port = _free_port()
        self.random = random.Random(self.seed)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._counts: dict[str, int] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    @property
    def sms_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    def accepted(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.endpoint == name and 200 <= c.status < 300]

    def tried(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.endpoint == name]

    def texts_to(self, phone: str) -> list[str]:
        return [m["text"] for m in self.sms if m["to"] == phone]

    async def _hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        verified = []
        for index, secret in enumerate(self.secrets.get(name, [])):
            try:
                Webhook(secret).verify(body, dict(request.headers))
                verified.append(index)
            except Exception:
                pass
        behaviour = self.behaviour.get(name, Behaviour())
        count = self._counts[name] = self._counts.get(name, 0) + 1
        if behaviour.status is not None:
            status = behaviour.status
        elif count <= behaviour.fail_first or self.random.random() < behaviour.fail_ratio:
            status = 500
        else:
            status = 204
        call = Call(
            name,
            request.headers.get("webhook-id", ""),
            json.loads(body),
            verified,
            status,
            time.monotonic(),
        )
        if behaviour.delay and count <= behaviour.delay_calls:
            call.status = 0  # arrived, not yet answered
            self.calls.append(call)
            await asyncio.sleep(behaviour.delay)
            call.status = status
        else:
            self.calls.append(call)
        return Response(status_code=status)

    async def _sms(self, request: Request) -> Response:
        body = await request.json()
        body["idempotency_key"] = request.headers.get("idempotency-key")
        self.sms.append(body)
        return Response(status_code=202)

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task


# -- events ---------------------------------------------------------------------------------------


def pseudonym(seed: str) -> str:
    return "p1_" + uuid.uuid5(uuid.NAMESPACE_URL, seed).hex


def alert(
    site_id: str,
    kind: str = "rupture",
    severity: str = "high",
    *,
    episode_id: str = "ep-1",
    therapist_id: str = "th-1",
    session_number: int = 3,
    alert_id: str | None = None,
    respondent: str | None = None,
    inputs: dict[str, Any] | None = None,
) -> Event[AllianceAlert]:
    return Event(
        ALLIANCE_ALERT,
        AllianceAlert(
            alert_id=alert_id or str(uuid.uuid4()),
            episode_id=episode_id,
            site_id=site_id,
            therapist_id=therapist_id,
            status="opened",
            kind=kind,
            severity=severity,  # type: ignore[arg-type]
            rule=f"rule-{kind.replace('_', '-')}",
            session_number=session_number,
            respondent=respondent or pseudonym(f"{episode_id}-client"),
            inputs=inputs or {"instrument": "srs", "score": 28.5},
            suggestion_code="talk_about_the_relationship",
            at=datetime.now(UTC),
        ),
        source="/tests",
    )


def risk(
    site_id: str,
    *,
    episode_id: str = "ep-1",
    therapist_id: str = "th-1",
    session_number: int = 2,
    respondent: str | None = None,
) -> Event[RiskFlagged]:
    return Event(
        RISK_FLAGGED,
        RiskFlagged(
            response_id=str(uuid.uuid4()),
            episode_id=episode_id,
            site_id=site_id,
            therapist_id=therapist_id,
            session_number=session_number,
            respondent=respondent or pseudonym(f"{episode_id}-client"),
            respondent_role="client",
            instrument="phq-9",
            risk_items={"9": 1.0},
            answered_at=datetime.now(UTC),
        ),
        source="/tests",
    )


def match_confirmed(
    site_id: str, episode_id: str, members: list[tuple[str, str]], therapist_id: str = "th-1"
) -> Event[MatchConfirmed]:
    return Event(
        MATCH_CONFIRMED,
        MatchConfirmed(
            match_id=f"m-{episode_id}",
            episode_id=episode_id,
            site_id=site_id,
            therapist_id=therapist_id,
            client=members[0][0],
            members=[EpisodeMember(respondent=r, role=role) for r, role in members],  # type: ignore[arg-type]
            confirmed_at=datetime.now(UTC),
        ),
        source="/tests",
    )


def match_proposed(site_id: str) -> Event[MatchProposed]:
    return Event(
        MATCH_PROPOSED,
        MatchProposed(
            match_id=str(uuid.uuid4()),
            intake_id=str(uuid.uuid4()),
            site_id=site_id,
            client=pseudonym(str(uuid.uuid4())),
            options=[MatchOption(therapist_id="th-1", rank=1, score=0.9)],
        ),
        source="/tests",
    )


def session_completed(
    site_id: str, episode_id: str, session_number: int, attended: bool = True
) -> Event[SessionCompleted]:
    return Event(
        SESSION_COMPLETED,
        SessionCompleted(
            episode_id=episode_id,
            site_id=site_id,
            therapist_id="th-1",
            session_number=session_number,
            attended=attended,
            at=datetime.now(UTC),
        ),
        source="/tests",
    )


def feedback_recorded(
    site_id: str, episode_id: str, session_number: int, respondent: str, role: str
) -> Event[FeedbackRecorded]:
    return Event(
        FEEDBACK_RECORDED,
        FeedbackRecorded(
            response_id=str(uuid.uuid4()),
            episode_id=episode_id,
            site_id=site_id,
            therapist_id="th-1",
            session_number=session_number,
            respondent=respondent,
            respondent_role=role,  # type: ignore[arg-type]
            instrument="srs",
            instrument_version=1,
            items={"relationship": 9.0, "goals": 9.0, "approach": 9.0, "overall": 9.0},
            total=36.0,
            in_concern_or_clinical_range=False,
            answered_at=datetime.now(UTC),
        ),
        source="/tests",
    )


class Publisher:
    """Puts events on the real Kafka exactly as a service's outbox relay would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def publish(self, *events: Event[Any]) -> None:
        for event in events:
            record = encode(event, self.settings.topic(event.type.topic_name))
            await self.producer.send_and_wait(
                record.topic,
                value=record.value,
                key=record.key,
                headers=[(k, v.encode()) for k, v in record.headers.items()],
            )


# -- notify as its own process --------------------------------------------------------------------


def notify_env(settings: Settings, port: int) -> dict[str, str]:
    """``service_env`` plus every ``notify_*`` setting, so the process behaves as the test set."""
    env = service_env(settings, port)
    for name, value in settings.model_dump().items():
        if name.startswith("notify_") and value is not None:
            secret = getattr(value, "get_secret_value", None)
            env[f"RAPPORT_{name.upper()}"] = str(secret() if secret else value)
    return env


class NotifyProcess(ServiceProcess):
    """``rapport serve notify`` as a separate OS process (SIGKILL-able), with the notify
    settings of the test."""

    async def start(self) -> None:
        self.port = self.port or _free_port()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rapport.cli", "serve", "notify"],
            env=notify_env(self.settings, self.port),
            stdout=log,
            stderr=log,
            cwd=Path(__file__).resolve().parents[2],
        )
        await eventually(
            self.ready, timeout=60, interval=0.2, what=f"notify /readyz (log: {self.log_path})"
        )
