"""Weekly availability as bitmaps: 5-minute cells from Monday 00:00 (times rounded inward to
the grid), bit i = cell i, packed in 64-bit words so that a whole roster is searched at once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Final

import numpy as np

from services.intake.domain.matching.types import BoolArray, IntArray, WeeklySlot, WordArray

CELL_MINUTES: Final = 5
DAY_CELLS: Final = 24 * 60 // CELL_MINUTES
WEEK_CELLS: Final = 7 * DAY_CELLS
WORDS: Final = (WEEK_CELLS + 63) // 64
WEEK_BYTES: Final = WORDS * 8
_ALL_BITS: Final = (1 << 64) - 1


def slot_bits(slots: Iterable[WeeklySlot]) -> int:
    """5-minute cells covered by the slots (rounded inward), bit i = cell i from Monday 00:00."""
    bits = 0
    for s in slots:
        first = -(-s.start_minute // CELL_MINUTES)
        last = min(s.end_minute, 24 * 60) // CELL_MINUTES
        if last > first and 0 <= s.day <= 6:
            bits |= ((1 << (last - first)) - 1) << (s.day * DAY_CELLS + first)
    return bits


def start_bits(bits: int, cells: int) -> int:
    """Cells where a session of ``cells`` cells can start and stay inside ``bits``."""
    starts = bits
    for shift in range(1, cells):
        starts &= bits >> shift
    return starts


def as_words(bits: int) -> WordArray:
    return np.frombuffer(bits.to_bytes(WEEK_BYTES, "little"), dtype="<u8").astype(np.uint64)


def any_bits(words: WordArray) -> BoolArray:
    found: BoolArray = (words != 0).any(axis=1)
    return found


def _first_set(words: WordArray) -> tuple[IntArray, BoolArray]:
    """Per row, the index of the lowest set bit (and whether there is one)."""
    nonzero = words != 0
    found = nonzero.any(axis=1)
    word_index = nonzero.argmax(axis=1)
    word = words[np.arange(words.shape[0]), word_index]
    lowest = word & (~word + np.uint64(1))
    bit = np.bitwise_count(lowest - np.uint64(1)).astype(np.int64)
    return word_index.astype(np.int64) * 64 + bit, found


def search_from(first_day: IntArray, week_start: date, now_cell: int) -> IntArray:
    """The cell from which to look for a session: now, or the therapist's opening day."""
    opening_cell = (first_day - week_start.toordinal()) * DAY_CELLS
    from_cell: IntArray = np.where(first_day > 0, np.maximum(opening_cell, now_cell), now_cell)
    return from_cell


def first_start(words: WordArray, from_cell: IntArray) -> IntArray:
    """Per row, the first set cell at or after ``from_cell`` (cells from the Monday 00:00 of the
    week of ``now``, possibly weeks later), repeating weekly; -1 when the row is empty."""
    if from_cell.shape[0] == 0:
        return from_cell.copy()
    in_week = from_cell % WEEK_CELLS
    base = from_cell - in_week
    first = int(in_week[0])
    if (in_week == first).all():
        # Usually everyone is looked up from now: skip the words before now's word.
        word = first // 64
        after = words[:, word:].copy()
        after[:, 0] &= np.uint64(_ALL_BITS ^ ((1 << (first % 64)) - 1))
        cell, found = _first_set(after)
        cell += word * 64
    else:
        word_of = (in_week // 64)[:, None]
        bit = (in_week % 64).astype(np.uint64)
        partial = ~((np.uint64(1) << bit) - np.uint64(1))
        columns = np.arange(WORDS)[None, :]
        after = np.where(columns > word_of, words, np.uint64(0))
        after = np.where(columns == word_of, words & partial[:, None], after)
        cell, found = _first_set(after)
    result = np.where(found, base + cell, -1)
    if not found.all():
        cell_next, found_next = _first_set(words)
        result = np.where(found | ~found_next, result, base + WEEK_CELLS + cell_next)
    return result
