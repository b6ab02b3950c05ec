"""The registry as columns (:class:`Roster`) and the latest effectiveness per therapist and
domain with each domain's reference (:class:`EffectivenessTable`): built once per change, read
by every constraint and score part over all therapists at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import numpy as np

from services.intake.domain.matching.availability import (
    WEEK_BYTES,
    WORDS,
    any_bits,
    first_start,
    search_from,
    slot_bits,
    start_bits,
)
from services.intake.domain.matching.types import (
    BoolArray,
    DomainReference,
    Effectiveness,
    FloatArray,
    IntArray,
    Therapist,
    WordArray,
)


class Roster:
    """The therapist registry as column arrays, ordered by therapist id. Build it once per
    registry change (O(n)); :meth:`reserve` returns a copy with one more client on a
    therapist's caseload, sharing everything else."""

    therapists: tuple[Therapist, ...]
    index: dict[str, int]
    size: int
    active: BoolArray
    telehealth: BoolArray
    capacity: IntArray
    caseload: IntArray
    capacity_left: IntArray
    years: FloatArray
    first_day: IntArray
    _codes: dict[str, dict[str, BoolArray]]
    _conflicts: dict[str, IntArray]
    _availability: list[int]
    _starts: dict[int, tuple[WordArray, BoolArray]]
    _common: dict[tuple[int, bytes], BoolArray]
    _first: dict[tuple[int, int, int, bytes | None], IntArray]

    def __init__(self, therapists: Sequence[Therapist]) -> None:
        ordered = tuple(sorted(therapists, key=lambda t: t.id))
        index = {t.id: k for k, t in enumerate(ordered)}
        if len(index) != len(ordered):
            raise ValueError("therapist ids must be unique")
        n = len(ordered)
        self.therapists = ordered
        self.index = index
        self.size = n
        self.active = np.fromiter((t.active for t in ordered), dtype=np.bool_, count=n)
        self.telehealth = np.fromiter((t.telehealth for t in ordered), dtype=np.bool_, count=n)
        self.capacity = np.fromiter((t.capacity for t in ordered), dtype=np.int64, count=n)
        self.caseload = np.fromiter((t.caseload for t in ordered), dtype=np.int64, count=n)
        self.capacity_left = np.maximum(self.capacity - self.caseload, 0)
        self.years = np.fromiter((t.years_experience for t in ordered), dtype=np.float64, count=n)
        self.first_day = np.fromiter(
            (
                t.accepts_new_clients_from.toordinal() if t.accepts_new_clients_from else 0
                for t in ordered
            ),
            dtype=np.int64,
            count=n,
        )
        kinds = ("site", "language", "gender", "background", "modality", "scope", "domain")
        members: dict[str, dict[str, list[int]]] = {kind: {} for kind in kinds}
        conflicts: dict[str, list[int]] = {}
        for k, t in enumerate(ordered):
            for kind, codes in (
                ("site", t.sites),
                ("language", t.languages),
                ("background", t.background),
                ("modality", t.modalities),
                ("scope", t.scopes),
                ("domain", t.domains),
                ("gender", (t.gender,) if t.gender else ()),
            ):
                table = members[kind]
                for code in codes:
                    table.setdefault(code, []).append(k)
            for client in t.exclusions:
                conflicts.setdefault(client, []).append(k)
        self._codes = {}
        for kind, table in members.items():
            arrays: dict[str, BoolArray] = {}
            for code, rows in table.items():
                column = np.zeros(n, dtype=np.bool_)
                column[rows] = True
                column.flags.writeable = False
                arrays[code] = column
            self._codes[kind] = arrays
        self._conflicts = {c: np.asarray(rows, dtype=np.int64) for c, rows in conflicts.items()}
        self._availability = [slot_bits(t.availability) for t in ordered]
        self._starts = {}
        self._common = {}
        self._first = {}

    @classmethod
    def build(cls, therapists: Sequence[Therapist]) -> Roster:
        return cls(therapists)

    def reserve(self, therapist_id: str, clients: int = 1) -> Roster:
        """A copy with ``clients`` more on the therapist's caseload (after a confirmed match)."""
        k = self.index[therapist_id]
        copy = object.__new__(Roster)
        copy.__dict__.update(self.__dict__)
        copy.caseload = self.caseload.copy()
        copy.caseload[k] += clients
        copy.capacity_left = np.maximum(self.capacity - copy.caseload, 0)
        return copy

    def has_any(self, kind: str, codes: Iterable[str]) -> BoolArray:
        """Therapists with at least one of the codes (site, language, gender, background,
        modality, scope, domain)."""
        table = self._codes[kind]
        columns = [table[c] for c in codes if c in table]
        if not columns:
            return np.zeros(self.size, dtype=np.bool_)
        if len(columns) == 1:
            return columns[0]
        either: BoolArray = np.logical_or.reduce(columns)
        return either

    def has_code(self, kind: str, code: str) -> BoolArray:
        column = self._codes[kind].get(code)
        return column if column is not None else np.zeros(self.size, dtype=np.bool_)

    def conflicted(self, client: str) -> IntArray:
        return self._conflicts.get(client, np.zeros(0, dtype=np.int64))

    def common_times(self, cells: int, client: WordArray | None) -> BoolArray:
        """Per therapist, whether a session of ``cells`` cells fits both their availability and
        the client's windows (``client``: session starts as words; ``None``: no windows).
        Memoised per window pattern: waiting lists share a few common patterns."""
        starts, has_slot = self.session_starts(cells)
        if client is None:
            return has_slot
        key = (cells, client.tobytes())
        hit = self._common.get(key)
        if hit is None:
            if len(self._common) >= 256:
                self._common.clear()
            hit = self._common[key] = any_bits(starts & client)
            hit.flags.writeable = False
        return hit

    def first_sessions(
        self,
        cells: int,
        week_start: date,
        now_cell: int,
        rows: IntArray,
        client: WordArray | None = None,
    ) -> IntArray:
        """For the therapists at ``rows``, the first cell (from ``week_start``) at or after
        ``now_cell`` and their opening day where a session fits their availability (and the
        client's windows, when given), -1 when none. Memoised per (session length, now, window
        pattern), so a batch computes each therapist once per pattern."""
        key = (
            cells,
            week_start.toordinal(),
            now_cell,
            None if client is None else client.tobytes(),
        )
        known = self._first.get(key)
        if known is None:
            if len(self._first) >= 128:
                self._first.clear()
            known = self._first[key] = np.full(self.size, -2, dtype=np.int64)
        missing = rows[known[rows] == -2]
        if missing.shape[0]:
            starts, _ = self.session_starts(cells)
            words = starts[missing] if client is None else starts[missing] & client
            from_cell = search_from(self.first_day[missing], week_start, now_cell)
            known[missing] = first_start(words, from_cell)
        found: IntArray = known[rows]
        return found

    def session_starts(self, cells: int) -> tuple[WordArray, BoolArray]:
        """Per therapist, the weekly cells where a session of ``cells`` cells fits, as 32
        64-bit words, and whether there is any."""
        hit = self._starts.get(cells)
        if hit is None:
            packed = b"".join(
                start_bits(bits, cells).to_bytes(WEEK_BYTES, "little")
                for bits in self._availability
            )
            words = np.frombuffer(packed, dtype="<u8").astype(np.uint64).reshape(self.size, WORDS)
            hit = (words, (words != 0).any(axis=1))
            self._starts[cells] = hit
        return hit


class EffectivenessTable:
    """The latest ``therapist.effectiveness.updated`` per therapist × domain, with the reference
    each domain's estimates are compared with: given (e.g. the site mean from analytics), or
    else the mean of all shrunken estimates in the domain weighted by their cases (shrinkage
    pulls every estimate toward the site mean, so their mean is an estimate of it; a therapist
    with one case counts as one case, so "not enough data" moves the reference no more than its
    cases do, and never scores). When several records arrive for the same therapist and domain
    (two sites), the one with more cases wins."""

    def __init__(
        self,
        records: Iterable[Effectiveness] = (),
        reference: Mapping[str, DomainReference] | None = None,
    ) -> None:
        latest: dict[tuple[str, str], Effectiveness] = {}
        for r in records:
            key = (r.therapist_id, r.domain)
            held = latest.get(key)
            if held is None or r.n >= held.n:
                latest[key] = r
        self.records = latest
        improvement: dict[str, list[tuple[float, int]]] = {}
        deterioration: dict[str, list[tuple[float, int]]] = {}
        for r in latest.values():
            if r.reliable_improvement_rate is not None:
                improvement.setdefault(r.domain, []).append(
                    (r.reliable_improvement_rate.estimate, r.n)
                )
            if r.deterioration_rate is not None:
                deterioration.setdefault(r.domain, []).append((r.deterioration_rate.estimate, r.n))
        given = dict(reference or {})
        self.reference: dict[str, DomainReference] = {}
        for domain in set(improvement) | set(deterioration) | set(given):
            g = given.get(domain, DomainReference())
            imp = improvement.get(domain)
            det = deterioration.get(domain)
            self.reference[domain] = DomainReference(
                g.improvement
                if g.improvement is not None
                else (_case_weighted_mean(imp) if imp else None),
                g.deterioration
                if g.deterioration is not None
                else (_case_weighted_mean(det) if det else None),
            )
        self._aligned: dict[int, tuple[tuple[Therapist, ...], dict[str, FloatArray]]] = {}

    def get(self, therapist_id: str, domain: str) -> Effectiveness | None:
        return self.records.get((therapist_id, domain))

    def signal(self, record: Effectiveness) -> float | None:
        """How much better than the domain reference the therapist's shrunken rates are, as a
        proportion (improvement above reference plus deterioration below it); ``None`` when
        there is not enough data (a neutral prior)."""
        if record.classification == "not_enough_data":
            return None
        ref = self.reference.get(record.domain, DomainReference())
        value = 0.0
        used = False
        imp = record.reliable_improvement_rate
        if imp is not None and ref.improvement is not None:
            value += imp.estimate - ref.improvement
            used = True
        det = record.deterioration_rate
        if det is not None and ref.deterioration is not None:
            value -= det.estimate - ref.deterioration
            used = True
        return value if used else None

    def aligned(self, roster: Roster) -> dict[str, FloatArray]:
        """Per domain, the signal of every therapist of the roster (0 when neutral)."""
        key = id(roster.therapists)
        hit = self._aligned.get(key)
        if hit is not None and hit[0] is roster.therapists:
            return hit[1]
        columns: dict[str, FloatArray] = {}
        for (therapist_id, domain), record in self.records.items():
            k = roster.index.get(therapist_id)
            value = self.signal(record)
            if k is None or value is None:
                continue
            column = columns.get(domain)
            if column is None:
                column = columns[domain] = np.zeros(roster.size, dtype=np.float64)
            column[k] = value
        if len(self._aligned) >= 8:
            self._aligned.clear()
        self._aligned[key] = (roster.therapists, columns)
        return columns


def _case_weighted_mean(values: Sequence[tuple[float, int]]) -> float:
    """The mean of estimates weighted by their cases (equal weights when none has a case)."""
    cases = sum(max(n, 0) for _, n in values)
    if cases == 0:
        return sum(v for v, _ in values) / len(values)
    return sum(v * max(n, 0) for v, n in values) / cases
