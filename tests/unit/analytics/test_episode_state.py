"""The episode state is a small serialisable value: a service can persist it between events and
get exactly the alerts it would have got without."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.analytics.domain import (
    EpisodeState,
    RuleConfig,
    ScoredRecord,
    UnknownInstrumentError,
    apply,
)
from tests.fixtures import REPLAY_SAMPLE
from tests.unit.analytics.builders import INSTRUMENTS, Episode

SAMPLE = REPLAY_SAMPLE


def _sample_records() -> list[ScoredRecord]:
    records = []
    for line in SAMPLE.read_text().splitlines():
        row = json.loads(line, parse_float=Decimal)
        records.append(
            ScoredRecord(
                episode_id=row["episode_id"],
                site_id=row["site_id"],
                therapist_id=row["therapist_id"],
                session=row["session"],
                at=None,
                role=row["respondent"],
                respondent_id=row["respondent_id"],
                instrument=row["instrument"],
                items=row["items"],
                total=INSTRUMENTS[row["instrument"]].total(row["items"]),
            )
        )
    return records


def test_state_persisted_as_json_between_every_record_gives_the_same_alerts() -> None:
    config = RuleConfig()
    plain: dict[str, EpisodeState] = {}
    persisted: dict[str, str] = {}
    plain_changes, persisted_changes = [], []
    records = _sample_records()
    # one late record, so that the kept records round-trip too
    records.insert(20, records.pop(12))

    for record in records:
        state, changes = apply(plain.get(record.episode_id), record, INSTRUMENTS, config)
        plain[record.episode_id] = state
        plain_changes += [c.to_json() for c in changes]

        stored = persisted.get(record.episode_id)
        loaded = EpisodeState.from_json(json.loads(stored)) if stored else None
        state, changes = apply(loaded, record, INSTRUMENTS, config)
        persisted[record.episode_id] = json.dumps(state.to_json())
        persisted_changes += [c.to_json() for c in changes]

    assert persisted_changes == plain_changes
    assert len(plain_changes) > 50
    for episode_id, state in plain.items():
        assert json.loads(persisted[episode_id]) == json.loads(json.dumps(state.to_json()))


def test_apply_returns_the_state_to_use_next_and_leaves_records_untouched() -> None:
    episode = Episode()
    record = episode.record(1, "srs", "35.0")
    items_before = dict(record.items)

    state, _ = apply(None, record, INSTRUMENTS, RuleConfig())
    state2, _ = apply(state, episode.record(2, "srs", "36.0"), INSTRUMENTS, RuleConfig())

    assert state2 is state  # updated in place: apply owns the state it is given
    assert dict(record.items) == items_before


def test_an_unknown_instrument_is_refused() -> None:
    record = Episode().record(1, "srs", "35.0")._replace(instrument="core-34")

    with pytest.raises(UnknownInstrumentError):
        apply(None, record, INSTRUMENTS, RuleConfig())


def test_a_record_of_another_episode_is_refused() -> None:
    state, _ = apply(None, Episode().record(1, "srs", "35.0"), INSTRUMENTS, RuleConfig())

    with pytest.raises(ValueError, match="episode"):
        apply(state, Episode(episode_id="ep-2").record(2, "srs", "35.0"), INSTRUMENTS, RuleConfig())


def test_the_total_counts_reversed_items_as_min_plus_max_minus_the_answer() -> None:
    reversed_wai = INSTRUMENTS["wai-sr"].model_copy(update={"reversed": ["1"]})
    items = {str(i): 5 for i in range(1, 13)}

    assert INSTRUMENTS["wai-sr"].total(items) == 60
    assert reversed_wai.total(items) == 56
