"""Attendance in the labelled network of ``rapport.simulation``: each episode's diary of
scheduled sessions, and the attendance alerts the rules must open on it.

Pure: no I/O. An episode's sessions are booked weekly, on the same weekday and at the same
site-local time (between 09:00 and 19:00 where the site is). Sessions 1 to 4 are always
attended (so the rules that count sessions from the first, early alliance and not-on-track at
session 4, judge the simulated course far from their thresholds); later a booked session is now
and then missed (did not attend), cancelled by the client with notice or cancelled by the
clinic, and the attended sessions the course needs follow on the next weeks. A client who
drops out does so silently: after the last attended session the next one or two booked sessions
are missed (or cancelled by the client), or nothing more happens, and no session is booked
again. Every appointment is a numbered session of the
episode, so the questionnaires of attended sessions carry their appointment's number.

The labels follow docs/clinical-rules.md (issue 16's definitions), computed here from the diary
itself, independently of the analytics code:

* ``missed_sessions`` opens at the second of two consecutive missed sessions (cancellations of
  either kind neither count nor break the run), once per run; an attended session ends the run;
* ``no_contact`` falls due at the site-local midnight that begins the 21st day after the last
  contact (an attended session or a questionnaire) and opens when the clock (the latest time
  seen, or the end of the replay) reaches that due time before the next contact; its session is
  the episode's latest session number seen before that moment.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

Status = Literal["attended", "missed", "cancelled_by_client", "cancelled_by_clinic"]
# Sites in turn: zones with their own daylight-saving changes inside the simulated months.
SITE_ZONES = ("Europe/London", "America/New_York", "Australia/Sydney")
ALWAYS_ATTENDED = 4  # the first sessions
NOT_ATTENDED = 0.15  # share of the later booked sessions that do not take place
NOT_ATTENDED_AS: tuple[Status, ...] = ("missed", "cancelled_by_client", "cancelled_by_clinic")
NOT_ATTENDED_WEIGHTS = (0.5, 0.3, 0.2)
# After a drop-out's last attended session, one in five each:
DROPOUT_TAILS: tuple[tuple[Status, ...], ...] = (
    ("missed", "missed"),
    ("missed", "cancelled_by_client"),
    ("missed",),
    ("cancelled_by_client",),
    (),
)
NO_CONTACT_DAYS = 21
MISSED_IN_A_ROW = 2


@dataclass(frozen=True)
class Appointment:
    """One booked session: its number in the episode, when (site-local, with offset), and what
    became of it."""

    number: int
    at: datetime
    status: Status


def site_zone(site_index: int) -> str:
    return SITE_ZONES[site_index % len(SITE_ZONES)]


def draw_diary(
    key: str, sessions: int, dropped_out: bool, first_day: date, zone: ZoneInfo
) -> list[Appointment]:
    """The episode's booked sessions: ``sessions`` attended ones with the missed and cancelled
    ones between them, then (a drop-out) the tail of sessions the client no longer came to. Its
    own generator (by ``key``: the episode or client), so the rest of the network draws as it
    always did; the same key gives the same diary in every process."""
    rng = random.Random(f"attendance:{key}")
    minute = zlib.crc32(key.encode()) % 600
    statuses: list[Status] = []
    attended = 0
    while attended < sessions:
        if len(statuses) >= ALWAYS_ATTENDED and rng.random() < NOT_ATTENDED:
            statuses.append(rng.choices(NOT_ATTENDED_AS, NOT_ATTENDED_WEIGHTS)[0])
        else:
            statuses.append("attended")
            attended += 1
    if dropped_out:
        statuses += rng.choice(DROPOUT_TAILS)
    return [
        Appointment(
            number,
            datetime.combine(
                first_day + timedelta(weeks=number - 1),
                time(9 + minute // 60, minute % 60),
                tzinfo=zone,
            ),
            status,
        )
        for number, status in enumerate(statuses, start=1)
    ]


def attended_numbers(diary: Sequence[Appointment]) -> list[int]:
    """The session numbers of the attended sessions, in order (the n-th attended session's
    questionnaires carry the n-th of these)."""
    return [a.number for a in diary if a.status == "attended"]


def session_line(
    episode_id: str, site_id: str, therapist_id: str, appointment: Appointment
) -> dict[str, Any]:
    """The appointment as a replay session line (issue 16's format)."""
    return {
        "episode_id": episode_id,
        "site_id": site_id,
        "therapist_id": therapist_id,
        "session": appointment.number,
        "at": appointment.at.isoformat(),
        "event": "session",
        "status": appointment.status,
    }


def arrival_order(line: dict[str, Any]) -> tuple[datetime, str, int, str, str]:
    """Replay lines' arrival order: by instant (offsets differ between sites), then episode, a
    session's line before its questionnaires."""
    return (
        datetime.fromisoformat(line["at"]),
        line["episode_id"],
        0 if line.get("event") == "session" else 1,
        line.get("respondent_id", ""),
        line.get("instrument", ""),
    )


def missed_sessions_at(diary: Iterable[Appointment]) -> list[int]:
    """The sessions at which ``missed_sessions`` must open: the second missed session of each
    run of consecutive missed ones, cancellations ignored."""
    opened: list[int] = []
    run = 0
    for appointment in sorted(diary, key=lambda a: a.number):
        if appointment.status == "missed":
            run += 1
            if run == MISSED_IN_A_ROW:
                opened.append(appointment.number)
        elif appointment.status == "attended":
            run = 0
    return opened


def no_contact_due(contact: datetime, zone: ZoneInfo) -> datetime:
    """The site-local midnight that begins the 21st calendar day after the contact's date."""
    day = contact.astimezone(zone).date() + timedelta(days=NO_CONTACT_DAYS)
    return datetime.combine(day, time(0), tzinfo=zone)


def no_contact_at(
    diary: Sequence[Appointment], contacts: Iterable[datetime], zone: ZoneInfo, clock_end: datetime
) -> list[tuple[int, datetime]]:
    """Each time ``no_contact`` must open for the episode, as (the session it carries, the due
    time): a gap from one contact to the next (or to the end of the clock) that reaches the due
    time. ``contacts`` are the instants of its attended sessions and questionnaires."""
    times = sorted(set(contacts))
    fired: list[tuple[int, datetime]] = []
    for n, contact in enumerate(times):
        due = no_contact_due(contact, zone)
        following = times[n + 1] if n + 1 < len(times) else None
        if (following is None or following >= due) and clock_end >= due:
            seen = [a.number for a in diary if a.at < due]
            fired.append((max(seen), due))
    return fired
