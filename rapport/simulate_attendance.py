"""Attendance in the demo: each simulated client's diary of booked sessions, and what the
analytics attendance rules make of it.

Every course of the run (``rapport.simulate_live``) is laid out as the diary of a client whose
sessions are booked weekly from the week after intake, at a site-local time in the site's zone
(``rapport.simulation_attendance``: from the fifth booked session a session is now and then
missed or cancelled, by the client or the clinic, and the attended ones follow on the next
weeks; a client who drops out stops coming silently: the next one or two booked sessions are
missed or cancelled, or nothing more happens). The diaries (session lines and the course's
questionnaires, at their booked session's number and time) are replayed offline through the
analytics rules on the replay's clock (``rapport.replay``), up to the day the last drop-out
became one. A drop-out becomes one ``DROPOUT_AFTER_DAYS`` (28) site-local days after the last
contact, as intake decides; it counts as caught when a ``missed_sessions`` or ``no_contact``
alert opened after that last contact and before then, and the report gives how many days
before it the first such alert came. (The replay knows no episode's end: a client who completed
also gets ``no_contact`` three weeks later, which the service, told of the closing, would not
raise; those are not counted.)

Pure apart from loading the instrument definitions (as ``rapport.simulate_arms``).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rapport.simulation import FIRST_DAY
from rapport.simulation_attendance import (
    Appointment,
    arrival_order,
    attended_numbers,
    draw_diary,
    session_line,
    site_zone,
)
from shared.site_time import days_between, start_of_day_after

if TYPE_CHECKING:
    from rapport.simulate import Course, Network
    from rapport.simulate_live import LiveRun

DROPOUT_AFTER_DAYS = 28  # intake's dropout_after_days default
CATCHING = ("missed_sessions", "no_contact")


@dataclass(frozen=True)
class Dropout:
    episode_id: str
    last_contact: datetime
    dropped_out_at: datetime  # the site-local midnight DROPOUT_AFTER_DAYS after last contact
    zone: ZoneInfo


@dataclass(frozen=True)
class AttendanceFigures:
    """What the diaries held and what the attendance rules raised on them."""

    booked: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    missed_sessions_alerts: int = 0
    dropouts: int = 0
    caught_by: dict[str, int] = field(default_factory=dict)  # the first alert's kind
    days_before: tuple[int, ...] = ()  # per caught drop-out, days before it became one

    @property
    def caught(self) -> int:
        return len(self.days_before)

    def to_json(self) -> dict[str, Any]:
        days = self.days_before
        return {
            "booked_sessions": self.booked,
            "attended": self.statuses.get("attended", 0),
            "missed": self.statuses.get("missed", 0),
            "cancelled_by_client": self.statuses.get("cancelled_by_client", 0),
            "cancelled_by_clinic": self.statuses.get("cancelled_by_clinic", 0),
            "missed_sessions_alerts": self.missed_sessions_alerts,
            "dropouts": self.dropouts,
            "dropouts_caught": self.caught,
            "caught_by": dict(self.caught_by),
            "days_before_dropout_median": statistics.median(days) if days else None,
            "days_before_dropout_min": min(days) if days else None,
            "days_before_dropout_max": max(days) if days else None,
        }


def zones_of(network: Network) -> dict[str, str]:
    """The demo sites' time zones, in turn (``rapport.simulation_attendance.SITE_ZONES``)."""
    return {site.id: site_zone(n) for n, site in enumerate(network.sites)}


def diary_lines(
    network: Network, episode_id: str, course: Course, zone: ZoneInfo
) -> tuple[list[Appointment], list[dict[str, Any]]]:
    """The course's booked sessions and its replay lines (session lines, then each attended
    session's questionnaires at its booked number and time)."""
    client = course.client
    diary = draw_diary(
        f"{network.seed}:{client.id}",
        course.session_number,
        course.ended == "dropped_out",
        FIRST_DAY + timedelta(weeks=client.arrival_week),
        zone,
    )
    where = (episode_id, client.site_id, course.therapist.id)
    lines = [session_line(*where, a) for a in diary]
    numbers = attended_numbers(diary)
    for result in course.history:
        booked = diary[numbers[result.session_number - 1] - 1]
        lines += [
            {
                "episode_id": episode_id,
                "site_id": client.site_id,
                "therapist_id": course.therapist.id,
                "session": booked.number,
                "at": booked.at.isoformat(),
                "respondent": answer.respondent_role,
                "respondent_id": f"{episode_id}-{answer.respondent_role}",
                "instrument": answer.instrument,
                "items": dict(answer.items),
            }
            for answer in result.answers
        ]
    return diary, lines


def figures(network: Network, live: LiveRun) -> AttendanceFigures:
    """Lay out every course of the run as a diary, replay it, and count."""
    from rapport.replay import replay_lines
    from shared.instruments import SHIPPED, load_instruments
    from shared.site_time import SiteTimeZones

    names = zones_of(network)
    statuses: Counter[str] = Counter()
    lines: list[dict[str, Any]] = []
    dropouts: list[Dropout] = []
    for episode_id, course in live.courses.items():
        if not course.history:
            continue
        zone = ZoneInfo(names[course.client.site_id])
        diary, course_lines = diary_lines(network, episode_id, course, zone)
        statuses.update(a.status for a in diary)
        lines += course_lines
        if course.ended == "dropped_out":
            last = max(a.at for a in diary if a.status == "attended")
            at = start_of_day_after(last, DROPOUT_AFTER_DAYS, zone)
            dropouts.append(Dropout(episode_id, last, at, zone))
    lines.sort(key=arrival_order)
    opened: list[dict[str, Any]] = []
    as_of = max((d.dropped_out_at for d in dropouts), default=None)
    replay_lines(
        [json.dumps(line) for line in lines],
        load_instruments(SHIPPED),
        lambda text: opened.append(json.loads(text)),
        zones=SiteTimeZones.parse(names),
        as_of=as_of,
    )
    alerts = [a for a in opened if a["kind"] in CATCHING]
    for alert in alerts:  # when it opened: its due time, or its session line's time
        due = alert.get("due_at")
        alert["opened_at"] = datetime.fromisoformat(due or lines[alert["line"] - 1]["at"])
    return AttendanceFigures(
        booked=sum(statuses.values()),
        statuses=dict(statuses),
        missed_sessions_alerts=sum(a["kind"] == "missed_sessions" for a in alerts),
        dropouts=len(dropouts),
        **_caught(dropouts, alerts),
    )


def _caught(dropouts: list[Dropout], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """For each drop-out, the first attendance alert after its last contact and before it
    became a drop-out: by which kind, and how many site-local days before."""
    by_episode: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_episode.setdefault(alert["episode_id"], []).append(alert)
    caught_by: Counter[str] = Counter()
    days: list[int] = []
    for dropout in dropouts:
        timely = [
            a
            for a in by_episode.get(dropout.episode_id, [])
            if dropout.last_contact < a["opened_at"] <= dropout.dropped_out_at
        ]
        if timely:
            first = min(timely, key=lambda a: a["opened_at"])
            caught_by[first["kind"]] += 1
            days.append(days_between(first["opened_at"], dropout.dropped_out_at, dropout.zone))
    return {"caught_by": dict(caught_by), "days_before": tuple(sorted(days))}
