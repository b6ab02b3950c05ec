"""Builders for the alert-rule tests: answers with a chosen total, and an episode that applies
records one by one and keeps every alert change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.analytics.domain import (
    AlertChange,
    EpisodeState,
    RuleConfig,
    ScoredRecord,
    Trajectories,
    apply,
)
from shared.instruments import SHIPPED, Instrument, load_instruments

INSTRUMENTS = load_instruments(SHIPPED)
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
TENTH = Decimal("0.1")


def four_items(instrument: str, total: str | Decimal, lowest: str | None = None) -> dict[str, Any]:
    """SRS or ORS answers (4 items, 0–10, one decimal) that sum exactly to ``total``; with
    ``lowest``, one item is that value and the others share the rest."""
    ids = INSTRUMENTS[instrument].items
    total = Decimal(total)
    if lowest is not None:
        low = Decimal(lowest)
        rest = _spread(total - low, 3, Decimal(10), TENTH)
        values = [*rest, low]
    else:
        values = _spread(total, 4, Decimal(10), TENTH)
    assert sum(values) == total and all(Decimal(0) <= v <= 10 for v in values), values
    return dict(zip(ids, values, strict=True))


def integer_items(instrument: str, total: int, **fixed: int) -> dict[str, Any]:
    """Integer answers (WAI-SR, PHQ-9, GAD-7) summing to ``total``; ``fixed`` pins items by id
    (``item_9=1`` pins PHQ-9 item 9)."""
    inst = INSTRUMENTS[instrument]
    pinned = {k.removeprefix("item_"): v for k, v in fixed.items()}
    free = [i for i in inst.items if i not in pinned]
    low, high = int(inst.item_min), int(inst.item_max)
    remaining = total - sum(pinned.values()) - low * len(free)
    values: dict[str, Any] = {}
    for item in free:
        add = min(high - low, max(0, remaining))
        values[item] = low + add
        remaining -= add
    assert remaining == 0, f"{instrument} cannot total {total} with {fixed}"
    values.update(pinned)
    return {i: values[i] for i in inst.items}


def _spread(total: Decimal, n: int, high: Decimal, step: Decimal) -> list[Decimal]:
    """``n`` values on ``step`` as equal as possible (larger ones first) summing to ``total``."""
    units, rest = divmod(total, step)
    assert rest == 0, total
    q, r = divmod(int(units), n)
    values = [(q + 1) * step if i < r else q * step for i in range(n)]
    assert max(values) <= high, (total, n)
    return values


def items_for(instrument: str, total: str | int | Decimal, **kw: Any) -> dict[str, Any]:
    if instrument.startswith(("srs", "ors")):
        return four_items(instrument.split("-")[0], Decimal(str(total)), **kw)
    return integer_items(instrument, int(total), **kw)


class Episode:
    """One episode: ``add`` applies a record and returns its alert changes."""

    def __init__(
        self,
        config: RuleConfig | None = None,
        episode_id: str = "ep-1",
        instruments: dict[str, Instrument] | None = None,
        trajectories: Trajectories | None = None,
        age_group: str | None = None,
    ) -> None:
        self.trajectories = trajectories
        self.age_group = age_group
        self.config = config or RuleConfig()
        self.episode_id = episode_id
        self.instruments = instruments or INSTRUMENTS
        self.state: EpisodeState | None = None
        self.changes: list[AlertChange] = []

    def record(
        self,
        session: int,
        instrument: str,
        total: str | int | Decimal | None = None,
        *,
        role: str = "client",
        respondent_id: str | None = None,
        items: dict[str, Any] | None = None,
        at: datetime | None = None,
        **item_kw: Any,
    ) -> ScoredRecord:
        inst = self.instruments[instrument]
        if items is None:
            assert total is not None
            items = items_for(instrument, total, **item_kw)
        return ScoredRecord(
            episode_id=self.episode_id,
            site_id="site-a",
            therapist_id="th-1",
            session=session,
            at=at or START + timedelta(days=7 * (session - 1)),
            role=role,
            respondent_id=respondent_id or f"{self.episode_id}-{role[0]}",
            instrument=instrument,
            items=items,
            total=inst.total(items),
        )

    def add(self, session: int, instrument: str, total: Any = None, **kw: Any) -> list[AlertChange]:
        return self.apply(self.record(session, instrument, total, **kw))

    def apply(self, record: ScoredRecord) -> list[AlertChange]:
        self.state, changes = apply(
            self.state,
            record,
            self.instruments,
            self.config,
            trajectories=self.trajectories,
            age_group=self.age_group,
        )
        self.changes.extend(changes)
        return changes

    def series(self, instrument: str, *totals: Any, first_session: int = 1, **kw: Any) -> None:
        for offset, total in enumerate(totals):
            self.add(first_session + offset, instrument, total, **kw)

    def opened(self, kind: str | None = None) -> list[AlertChange]:
        return [c for c in self.changes if c.action == "open" and kind in (None, c.kind)]

    def resolved(self, kind: str | None = None) -> list[AlertChange]:
        return [c for c in self.changes if c.action == "resolve" and kind in (None, c.kind)]

    def open_now(self, kind: str) -> list[AlertChange]:
        assert self.state is not None
        return [a for a in self.state.open_alerts.values() if a.kind == kind]


def opened(changes: list[AlertChange], kind: str | None = None) -> list[AlertChange]:
    return [c for c in changes if c.action == "open" and kind in (None, c.kind)]


def resolved(changes: list[AlertChange], kind: str | None = None) -> list[AlertChange]:
    return [c for c in changes if c.action == "resolve" and kind in (None, c.kind)]


EPISODE_RULES = frozenset({"dropout_risk", "rematch_suggested"})


def kinds(changes: list[AlertChange], *, all_rules: bool = False) -> list[tuple[str, str]]:
    """(action, kind) of each change; without ``all_rules``, leaves out rules 10 and 11 (which
    react to most of the others)."""
    return [(c.action, c.kind) for c in changes if all_rules or c.kind not in EPISODE_RULES]
