"""The clock of ``rapport replay``: time-driven checks (``no_contact``, rule 10's days without
contact) fired as the replayed lines move time on, with the analytics service's own domain code.

The replay's clock is the latest ``at`` seen so far (a late line never moves it back). After a
line is applied, the episode's pending checks are what ``services.analytics.domain.attendance``
says is due for its state (``due_checks``), at instants computed from the site's time zone.
Before a line is applied, every check due at or before its ``at`` fires (``fire``, which decides
again from the state, as the service's sweep does), for every episode, in order of due time
(then episode id, then kind); ``--as-of`` moves the clock once more at the end. A check fires
with its due time as "now", as a service sweeping continuously would; a check its own firing
makes due again at or before that time is dropped (nothing fires twice at one instant).

The replay also plays intake's part: an episode followed for silence drops out at the site's
midnight ``dropout_after_days`` (28) days after its last contact (``on_phase`` to
``dropped_out``, as analytics hears it from ``episode.phase_changed``), and a contact after that
makes it active again (``returned``). So the replay pends and fires what the service would: no
check after a drop-out, rule 10's days counted only while the episode is active.

Pending checks are refreshed lazily where that is exact: a line that only moves the episode's
last contact on (what else a due time depends on — the phase, whether its alert is open, rule
10's score without the days — unchanged) can only move its due times later, so the pending
entry stays and is computed afresh when it falls due (and pushed back if it moved). Anything
else refreshes the episode's pending checks at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # the analytics domain and the kernel are imported when a replay runs
    from services.analytics.domain import AlertChange, EpisodeState, RuleConfig
    from shared.site_time import SiteTimeZones


class Where(NamedTuple):
    """An episode's site and therapist, as its latest line gave them (for the output lines)."""

    site_id: str
    therapist_id: str


# What a fired check reports: the changes, the episode's site and therapist, the due time, and
# the number of the line whose time moved the clock (None: the end of the replay, --as-of).
Emit = Callable[["list[AlertChange]", Where, "datetime | None", "int | None"], None]


# Intake's default for a silent active episode (dropout_after_days of its per-site settings).
DROPOUT_AFTER_DAYS = 28
# The replay's own pending "check" for intake's drop-out (never an alert).
DROP_OUT = "dropped_out"


class ReplayClock:
    """Pending checks of every episode, fired as the clock moves on."""

    def __init__(
        self,
        episodes: Mapping[str, EpisodeState],
        zones: SiteTimeZones,
        config_of: Callable[[str], RuleConfig],
        emit: Emit,
        dropout_after_days: int = DROPOUT_AFTER_DAYS,
    ) -> None:
        from services.analytics.domain import (
            DROPOUT_RISK,
            NO_CONTACT,
            TIME_DRIVEN,
            due_checks,
            fire,
        )
        from services.analytics.domain.attendance import followed, on_phase
        from services.analytics.domain.dropout import missed_sessions
        from shared.site_time import start_of_day_after

        self._start_of_day_after = start_of_day_after
        self._followed = followed
        self._on_phase = on_phase
        self.dropout_after_days = dropout_after_days

        self._kinds = TIME_DRIVEN
        self._alert_keys = ((NO_CONTACT, None, None), (DROPOUT_RISK, None, None))
        self._missed_sessions = missed_sessions
        self._due_checks = due_checks
        self._fire = fire
        self.episodes = episodes
        self.zones = zones
        self.config_of = config_of
        self.emit = emit
        self.now: datetime | None = None
        self.fired = 0
        self._heap: list[tuple[datetime, str, str]] = []
        self._pending: dict[tuple[str, str], datetime] = {}
        self._where: dict[str, Where] = {}
        self._seen: dict[str, tuple[tuple[object, ...], datetime | None]] = {}

    def follow(self, state: EpisodeState, site_id: str, therapist_id: str) -> None:
        """A line was applied to ``state``'s episode: pend what its state makes due, at once
        unless the line only moved the last contact on (see the module docstring)."""
        episode_id = state.episode_id
        attendance = state.attendance
        if (
            attendance.phase == DROP_OUT
            and attendance.last_contact is not None
            and attendance.phase_at is not None
            and attendance.last_contact > attendance.phase_at
        ):
            self._on_phase(state, "active", attendance.last_contact)  # the client returned
        where = self._where.get(episode_id)
        if where is None or where.site_id != site_id or where.therapist_id != therapist_id:
            self._where[episode_id] = Where(site_id, therapist_id)
        open_alerts = state.open_alerts
        no_contact, dropout = self._alert_keys
        key = (
            site_id,
            attendance.phase,
            no_contact in open_alerts,
            dropout in open_alerts,
            attendance.intervals_without_contact,
            # rule 10's score without the days (dropout.dropout_points), by its inputs
            state.early_low,
            state.open_ruptures,
            state.open_unresolved,
            state.missed_feedback,
            self._missed_sessions(state),
        )
        contact = attendance.last_contact
        seen = self._seen.get(episode_id)
        self._seen[episode_id] = (key, contact)
        if seen is not None and seen[0] == key and seen[1] is not None:
            if contact is not None and contact >= seen[1]:
                return  # only later due times: refreshed when they fall due
        self._pend(state, site_id, None)

    def _pend(self, state: EpisodeState, site_id: str, fired: tuple[str, datetime] | None) -> None:
        episode_id = state.episode_id
        zone = self.zones.of(site_id)
        due = self._due_checks(state, self.config_of(site_id), zone)
        drop = self._drop_out_due(state, zone)
        if drop is not None:
            due = {**due, DROP_OUT: drop}
        for kind in (*self._kinds, DROP_OUT):
            at = due.get(kind)
            slot = (episode_id, kind)
            if at is None or (fired is not None and fired[0] == kind and at <= fired[1]):
                self._pending.pop(slot, None)
            elif self._pending.get(slot) != at:
                self._pending[slot] = at
                heapq.heappush(self._heap, (at, episode_id, kind))

    def _drop_out_due(self, state: EpisodeState, zone: Any) -> datetime | None:
        """When intake would drop the episode out: the site's midnight ``dropout_after_days``
        after the last contact, while it is followed for silence."""
        last = state.attendance.last_contact
        if last is None or state.attendance.phase == DROP_OUT or not self._followed(state):
            return None
        return self._start_of_day_after(last, self.dropout_after_days, zone)

    def advance(self, to: datetime, lineno: int | None) -> None:
        """Move the clock to ``to`` (never back) and fire every check due by then."""
        if self.now is None or to > self.now:
            self.now = to
        now = self.now
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, episode_id, kind = heapq.heappop(heap)
            if self._pending.get((episode_id, kind)) != due:
                continue  # rescheduled or cancelled since
            del self._pending[(episode_id, kind)]
            state = self.episodes[episode_id]
            where = self._where[episode_id]
            zone = self.zones.of(where.site_id)
            config = self.config_of(where.site_id)
            if kind == DROP_OUT:
                fresh = self._drop_out_due(state, zone)
            else:
                fresh = self._due_checks(state, config, zone).get(kind)
            if fresh is None:
                continue
            if fresh > due:  # the last contact moved on since: due later
                self._pending[(episode_id, kind)] = fresh
                heapq.heappush(heap, (fresh, episode_id, kind))
                continue
            due = fresh
            if kind == DROP_OUT:  # intake's part: no alert, only what is due changes
                self._on_phase(state, DROP_OUT, due)
                self._seen.pop(episode_id, None)
                self._pend(state, where.site_id, (kind, due))
                continue
            changes = self._fire(state, kind, due, config, zone)
            self.fired += 1
            if changes:
                self.emit(changes, where, due.astimezone(zone), lineno)  # site-local
            self._seen.pop(episode_id, None)
            self._pend(state, where.site_id, (kind, due))
