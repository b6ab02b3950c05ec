"""``rapport replay FILE.jsonl [--out alerts.jsonl]``: the analytics alert rules, offline.

Reads feedback records in the replay interchange format (one JSON object per line, in arrival
order: ``episode_id``, ``site_id``, ``therapist_id``, ``session``, ``at``, ``respondent``,
``respondent_id``, ``instrument``, ``items``, and optionally ``age_group``: ``child``,
``adolescent``, ``adult`` or ``older_adult``, the client's age group for the episode as
``match.confirmed`` gives it to analytics; a line without it keeps the episode's last one),
scores each with its instrument definition and runs the same domain code as the analytics
service (``services.analytics.domain.apply``). Writes one
JSON object per opened alert, in the order they open: ``episode_id``, ``session``, ``kind``,
``severity``, ``rule``, ``respondent_id`` (for the episode-level rules 6, 7, 10 and 11: the
respondent whose record fired it), plus ``status``, ``instrument``, ``inputs``,
``suggestion_code``, ``suggestion``, ``site_id``, ``therapist_id`` and ``line`` (the input line
that fired it). ``--include-resolved`` also writes resolves (``"status": "resolved"``).

Session lines (issue 16) sit beside the feedback lines, in the same arrival order:
``{"episode_id", "site_id", "therapist_id", "session", "at", "event": "session", "status"}`` with
``status`` one of ``attended``, ``missed``, ``cancelled_by_client``, ``cancelled_by_clinic`` and
``at`` an ISO 8601 date-time with a UTC offset (a line without one is reported, naming the line
and the field, and skipped). They go through the analytics attendance rules
(``services.analytics.domain.attendance``: ``missed_sessions``, and rule 10's missed sessions);
an attended session and any feedback line are contacts. The replay's clock is the latest ``at``
seen so far: before a line is applied, every time-driven check (``no_contact``, rule 10's days
without contact) that fell due at or before its ``at`` fires, for every episode
(:mod:`rapport.replay_clock`); ``--as-of TIME`` fires those due by TIME at the end. Due times are
site-local midnights: ``--time-zones`` gives each site's IANA zone (UTC otherwise). A
time-driven alert's line carries the episode's latest session number when it fired, ``line``
the input line whose time moved the clock past its due time (``null`` for ``--as-of``) and
``due_at`` the due time (site-local); its ``respondent_id`` is ``clock`` (a session line's
alerts say ``attendance``).

Instruments with open items (``goals``: the items are the episode's goal ids, values 0–10, the
set may change between sessions) take any well-formed ids, at most the definition's number;
``support`` has one item ``support``. Both run the same rules as the service (12 and 13).

A bad line (not JSON, missing or mistyped fields, an unknown age group, unknown instrument,
a respondent the instrument does not allow, items failing the instrument's checks) is reported
on stderr with its line number and skipped. A line whose only fault is an item value outside
the instrument's range or step
is replayed as given, with a warning naming its line: replay reprocesses what was recorded
(the shared worked example has six such SRS lines, e.g. an item of 10.2, and its expected
alerts assume they were replayed); ``--strict-ranges`` skips such lines as bad instead, as the
live feedback service would have refused them. Exit status
0 when the file was read (bad lines are counted in the summary), 2 when the input or output
cannot be opened. A one-line summary goes to stderr.

Site configuration (``--config FILE``): ``{"default": {...}, "sites": {"site-a": {...}}}`` with
the fields of ``RuleConfig`` (``services/analytics/rules_config.py``); a site's overrides are
merged over the default's.

Over 500 lines: the command, its line checks (feedback and session lines) and the one hot loop
belong together (the loop is inlined on purpose: see :func:`replay_lines`); the clock is
:mod:`rapport.replay_clock`.
"""

from __future__ import annotations

import argparse
import gc
import json
import json.encoder
import json.scanner
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rapport.replay_clock import DROPOUT_AFTER_DAYS, ReplayClock

if TYPE_CHECKING:
    from services.analytics.domain import AlertChange, EpisodeState, RuleConfig, Trajectories
    from services.analytics.domain.records import SessionFact
    from shared.instruments import Instrument
    from shared.site_time import SiteTimeZones

ROLES = frozenset({"client", "partner", "family", "therapist"})
_STRING_FIELDS = ("episode_id", "site_id", "therapist_id", "respondent_id", "instrument")
_FIELDS = (*_STRING_FIELDS, "session", "at", "respondent", "items")
_MAX_ALLOWED_VALUES = 100_000
_NUMBER_TYPES = frozenset({int, Decimal})  # JSON numbers as parsed here; bool is not one
AGE_GROUPS = frozenset({"child", "adolescent", "adult", "older_adult"})  # match.confirmed's
SESSION_STATUSES = ("attended", "missed", "cancelled_by_client", "cancelled_by_clinic")
_SESSION_FIELDS = ("episode_id", "site_id", "therapist_id", "session", "at", "status")


class BadLine(ValueError):
    """Why a line cannot be replayed."""


class OutOfRange(BadLine):
    """An item value outside the instrument's range or off its step (accepted, with a warning,
    by default (not with ``--strict-ranges``))."""


@dataclass
class ReplayStats:
    lines: int = 0
    records: int = 0
    sessions: int = 0  # session lines applied
    checks_fired: int = 0  # time-driven checks that fell due on the replay's clock
    bad_lines: int = 0
    opened: int = 0
    resolved: int = 0
    episodes: int = 0
    late_records: int = 0
    out_of_range: int = 0
    seconds: float = 0.0

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class AnswerChecker:
    """An instrument's answer checks and scoring, precomputed for the hot loop (the same checks
    as ``services.feedback.domain.check_answers``: every item present, no unknown item, numbers
    in range and on the instrument's step; reversed items counted as min + max − value)."""

    __slots__ = (
        "allowed",
        "id",
        "instrument",
        "item_ids",
        "items",
        "open_ids",
        "respondents",
        "role_names",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.id = instrument.id
        self.role_names = {role: role for role in instrument.respondents}  # shared strings
        self.items = tuple(instrument.items)
        self.item_ids = frozenset(instrument.items)
        self.respondents = frozenset(instrument.respondents)
        # Open items (goal ratings): the ids are the episode's own, the set may change between
        # sessions; a line is checked for their form and number (the replay knows no episode
        # beyond its records), as feedback does before it checks the episode's goals.
        spec = instrument.open_items
        self.open_ids = (re.compile(spec.id_pattern), spec.max_items) if spec else None
        steps = (instrument.item_max - instrument.item_min) / instrument.step
        self.allowed: frozenset[Decimal | int] | None = None
        if steps == steps.to_integral_value() and steps < _MAX_ALLOWED_VALUES:
            values = (instrument.item_min + instrument.step * k for k in range(int(steps) + 1))
            # Whole values as int: JSON integers then compare int to int (equal Decimals and
            # ints hash alike, so 9.0 still matches 9).
            self.allowed = frozenset(
                int(v) if v == v.to_integral_value() else v.normalize() for v in values
            )

    def total(self, items: Any) -> Decimal:
        if type(items) is not dict:
            raise BadLine("items must be an object")
        if self.open_ids is not None:
            self._check_open_ids(items)
        elif items.keys() != self.item_ids:
            missing = [i for i in self.items if i not in items]
            unknown = [i for i in items if i not in self.item_ids]
            parts = []
            if missing:
                parts.append(f"missing item(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown item(s) {', '.join(map(repr, unknown))}")
            raise BadLine(f"{self.instrument.id}: {'; '.join(parts)}")
        allowed = self.allowed
        values = items.values()
        if (
            allowed is not None
            and _NUMBER_TYPES.issuperset(map(type, values))
            and allowed.issuperset(values)
        ):
            return self.instrument.total(items)  # the usual case, checked in C
        for item, value in items.items():
            kind = type(value)
            if kind is not int and kind is not Decimal:
                raise BadLine(f"{self.instrument.id}: item {item} must be a number, got {value!r}")
            if allowed is not None:
                if value in allowed:
                    continue
            elif self._valid(value):
                continue
            inst = self.instrument
            raise OutOfRange(
                f"{inst.id}: item {item} must be from {inst.item_min} to {inst.item_max} "
                f"in steps of {inst.step}, got {value}"
            )
        return self.instrument.total(items)

    def _check_open_ids(self, items: dict[str, Any]) -> None:
        assert self.open_ids is not None
        pattern, most = self.open_ids
        if not items:
            raise BadLine(f"{self.id}: needs at least one item")
        if len(items) > most:
            raise BadLine(f"{self.id}: at most {most} items, got {len(items)}")
        malformed = [i for i in items if not pattern.fullmatch(i)]
        if malformed:
            raise BadLine(f"{self.id}: malformed item id(s) {', '.join(map(repr, malformed))}")

    def total_unchecked(self, items: dict[str, Any]) -> Decimal:
        """The total of items that are numbers, whatever their range (out-of-range lines)."""
        for item, value in items.items():
            kind = type(value)
            if (kind is not int and kind is not Decimal) or (
                kind is Decimal and not value.is_finite()
            ):
                raise BadLine(f"{self.instrument.id}: item {item} must be a number, got {value!r}")
        return self.instrument.total(items)

    def _valid(self, value: Decimal | int) -> bool:
        inst = self.instrument
        if isinstance(value, Decimal) and not value.is_finite():
            return False
        return inst.item_min <= value <= inst.item_max and (value - inst.item_min) % inst.step == 0


def decimal_parser() -> Callable[[str], Decimal]:
    """JSON numbers with a fraction as Decimals, the same object for the same text (a few
    thousand distinct values repeat over a million lines; a shared Decimal hashes once)."""
    cache: dict[str, Decimal] = {}

    def parse(text: str) -> Decimal:
        value = cache.get(text)
        if value is None:
            value = Decimal(text)
            if len(cache) < 10_000:
                cache[text] = value
        return value

    return parse


def json_object_reader() -> Callable[[bytes | str], dict[str, Any] | None]:
    """One line of JSON Lines (UTF-8) to its object (numbers with a fraction as Decimals), None
    for a blank line, or :class:`BadLine` (:class:`UnicodeDecodeError`) saying why it is not
    one; a leading BOM is accepted."""
    decoder = json.JSONDecoder(parse_float=decimal_parser())
    # The C scanner, without decode()'s wrapping (typeshed types its argument oddly).
    scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(decoder)  # type: ignore[arg-type]

    def json_object(raw: bytes | str) -> dict[str, Any] | None:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text or text.isspace():
            return None
        try:
            obj, end = scan(text, 0)
        except StopIteration:  # leading whitespace, a BOM or no value
            try:
                obj, end = decoder.decode(text.removeprefix("\ufeff")), len(text)
            except ValueError as error:
                raise BadLine(f"not JSON: {error}") from None
        except ValueError as error:
            raise BadLine(f"not JSON: {error}") from None
        if end != len(text) and not text[end:].isspace():
            raise BadLine(f"not JSON: extra data at column {end + 1}")
        if type(obj) is not dict:
            raise BadLine("not a JSON object")
        return obj

    return json_object


def instant(text: object, name: str = "at") -> datetime:
    """An ISO 8601 date-time with a UTC offset (``BadLine`` naming the field otherwise)."""
    if type(text) is not str:
        raise BadLine(f"{name} must be an ISO 8601 date-time with a UTC offset, got {text!r}")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadLine(f"{name} must be an ISO 8601 date-time, got {text!r}") from None
    if at.tzinfo is None:
        raise BadLine(f"{name} must carry a UTC offset (e.g. 'Z' or '+01:00'), got {text!r}")
    return at


def session_fact(obj: dict[str, Any]) -> SessionFact:
    """A session line (``"event": "session"``) as the fact analytics applies, or ``BadLine``
    naming the field and the rule."""
    from services.analytics.domain.records import SessionFact

    missing = [f for f in _SESSION_FIELDS if f not in obj]
    if missing:
        raise BadLine(f"session line: missing field(s) {', '.join(missing)}")
    for name in ("episode_id", "site_id", "therapist_id"):
        value = obj[name]
        if type(value) is not str or not value:
            raise BadLine(f"{name} must be a non-empty string, got {value!r}")
    session = obj["session"]
    if type(session) is not int or session < 1:
        raise BadLine(f"session must be an integer from 1, got {session!r}")
    status = obj["status"]
    if type(status) is not str or status not in SESSION_STATUSES:
        raise BadLine(f"status must be one of {', '.join(SESSION_STATUSES)}, got {status!r}")
    return SessionFact(
        sys.intern(obj["episode_id"]),
        sys.intern(obj["site_id"]),
        sys.intern(obj["therapist_id"]),
        session,
        status,
        instant(obj["at"]),
    )


def replay_lines(
    lines: Iterable[bytes | str],
    instruments: Mapping[str, Instrument],
    write: Callable[[str], object] | None = None,
    *,
    default_config: RuleConfig | None = None,
    site_configs: Mapping[str, RuleConfig] | None = None,
    include_resolved: bool = False,
    lenient_ranges: bool = False,
    report: Callable[[int, str], object] | None = None,
    states: dict[str, EpisodeState] | None = None,
    trajectories: Trajectories | None = None,
    zones: SiteTimeZones | None = None,
    as_of: datetime | None = None,
    dropout_after_days: int = DROPOUT_AFTER_DAYS,
) -> ReplayStats:
    """Replay lines (arrival order) through the alert rules; ``write`` gets each output line
    (with its newline), ``report`` each bad line's number and reason (and, with
    ``lenient_ranges``, each accepted out-of-range line's). ``trajectories`` is the
    expected-trajectories model rule 9 uses (as analytics does). Session lines go through the
    attendance rules, and the time-driven checks fire on the replay's clock
    (:mod:`rapport.replay_clock`; ``zones`` gives each site's time zone, UTC by default;
    ``as_of`` moves the clock once more at the end). Returns the counts.

    The cyclic garbage collector is paused while replaying (the episode states hold no cycles,
    and collecting a million live records over and over would dominate the run).

    One long loop on purpose: it runs once per line of files of millions of lines, and a call
    per step costs a measurable share of ``bench/replay_bench.py``'s throughput."""
    from services.analytics.domain import RuleConfig, ScoredRecord, apply
    from services.analytics.domain.attendance import on_session
    from shared.site_time import SiteTimeZones

    config = default_config or RuleConfig()
    sites = site_configs or {}
    checkers = {iid: AnswerChecker(inst) for iid, inst in instruments.items()}
    json_object = json_object_reader()
    episodes: dict[str, EpisodeState] = {} if states is None else states
    age_groups: dict[str, str] = {}  # per episode, as analytics keeps it from match.confirmed
    stats = ReplayStats()

    def emit(
        changes: list[AlertChange], where: Any, due: datetime | None, at_line: int | None
    ) -> None:
        """Count and write changes not made by a questionnaire: a session line's (``due``
        None), or a time-driven check's (with its due time)."""
        for change in changes:
            if change.action == "open":
                stats.opened += 1
            else:
                stats.resolved += 1
                if not include_resolved:
                    continue
            if write is None:
                continue
            if due is None and at_line is not None:
                write(format_line(change, where, at_line))
            else:
                out = output_line(change, where, at_line)
                out["due_at"] = None if due is None else due.isoformat()
                write(json.dumps(out) + "\n")

    clock = ReplayClock(
        episodes,
        zones or SiteTimeZones(),
        lambda site: sites.get(site, config),
        emit,
        dropout_after_days,
    )
    last_at_text: object = None
    last_at: datetime | None = None
    intern = sys.intern
    gc_was_enabled = gc.isenabled()
    gc.disable()
    started = time.perf_counter()
    lineno = 0
    try:
        for lineno, raw in enumerate(lines, 1):
            try:
                obj = json_object(raw)
                if obj is None:  # a blank line
                    continue
                if obj.get("event") is not None:
                    if obj["event"] != "session":
                        raise BadLine(f"event must be 'session', got {obj['event']!r}")
                    fact = session_fact(obj)
                    clock.advance(fact.at, lineno)
                    stats.sessions += 1
                    followed, changes = on_session(
                        episodes.get(fact.episode_id), fact, sites.get(fact.site_id, config)
                    )
                    episodes[fact.episode_id] = followed
                    clock.follow(followed, fact.site_id, fact.therapist_id)
                    emit(changes, fact, None, lineno)
                    continue
                try:
                    episode_id = obj["episode_id"]
                    site_id = obj["site_id"]
                    therapist_id = obj["therapist_id"]
                    session = obj["session"]
                    at_text = obj["at"]
                    role = obj["respondent"]
                    respondent_id = obj["respondent_id"]
                    instrument_id = obj["instrument"]
                    items = obj["items"]
                except KeyError:
                    missing = [f for f in _FIELDS if f not in obj]
                    raise BadLine(f"missing field(s) {', '.join(missing)}") from None
                if not (
                    type(episode_id) is str
                    and type(site_id) is str
                    and type(therapist_id) is str
                    and type(respondent_id) is str
                    and type(instrument_id) is str
                    and episode_id
                    and site_id
                    and therapist_id
                    and respondent_id
                    and instrument_id
                ):
                    for name in _STRING_FIELDS:
                        value = obj[name]
                        if type(value) is not str or not value:
                            raise BadLine(f"{name} must be a non-empty string, got {value!r}")
                age_group = obj.get("age_group")
                if age_group is not None and (
                    type(age_group) is not str or age_group not in AGE_GROUPS
                ):
                    raise BadLine(
                        f"age_group must be one of {', '.join(sorted(AGE_GROUPS))}, "
                        f"got {age_group!r}"
                    )
                if type(session) is not int or session < 1:
                    raise BadLine(f"session must be an integer from 1, got {session!r}")
                if type(role) is not str or role not in ROLES:
                    raise BadLine(f"respondent must be one of {', '.join(sorted(ROLES))}")
                if at_text is None:
                    at = None
                elif at_text == last_at_text:
                    at = last_at
                else:
                    at = instant(at_text)
                    last_at_text, last_at = at_text, at
                checker = checkers.get(instrument_id)
                if checker is None:
                    raise BadLine(f"unknown instrument {instrument_id!r}")
                if role not in checker.respondents:
                    raise BadLine(f"{instrument_id} may not be answered by a {role}")
                try:
                    total = checker.total(items)
                except OutOfRange as error:
                    if not lenient_ranges:
                        raise
                    total = checker.total_unchecked(items)
                    stats.out_of_range += 1
                    if report is not None:
                        report(
                            lineno, f"warning: {error} (replayed as given; --strict-ranges skips)"
                        )
            except (BadLine, UnicodeDecodeError) as error:
                stats.bad_lines += 1
                if report is not None:
                    report(lineno, str(error))
                continue
            if at is not None:
                clock.advance(at, lineno)
            # Shared strings: a million records repeat a few thousand ids.
            episode_id = intern(episode_id)
            if age_group is not None:
                age_groups[episode_id] = age_group
            record = ScoredRecord(
                episode_id,
                intern(site_id),
                intern(therapist_id),
                session,
                at,
                checker.role_names[role],
                intern(respondent_id),
                checker.id,
                items,
                total,
            )
            stats.records += 1
            state = episodes.get(episode_id)
            if state is not None and session < state.last_session:
                stats.late_records += 1
            state, changes = apply(
                state,
                record,
                instruments,
                sites.get(site_id, config),
                None,
                trajectories,
                age_groups.get(episode_id),
            )
            episodes[episode_id] = state
            clock.follow(state, record.site_id, record.therapist_id)
            if changes:
                for change in changes:
                    if change.action == "open":
                        stats.opened += 1
                    else:
                        stats.resolved += 1
                        if not include_resolved:
                            continue
                    if write is not None:
                        write(format_line(change, record, lineno))
        if as_of is not None:
            clock.advance(as_of, None)
    finally:
        if gc_was_enabled:
            gc.enable()
    stats.checks_fired = clock.fired
    stats.lines = lineno
    stats.episodes = len(episodes)
    stats.seconds = time.perf_counter() - started
    return stats


_encode = json.JSONEncoder(check_circular=False).encode
_string = json.encoder.encode_basestring_ascii
_FRAGMENTS: dict[tuple[str, str], str] = {}


def format_line(change: AlertChange, record: Any, lineno: int) -> str:
    """``json.dumps(output_line(change, record, lineno)) + "\n"``, built faster: the fields
    that only depend on the kind and action are encoded once."""
    fixed = _FRAGMENTS.get((change.kind, change.action))
    if fixed is None:
        fixed = _FRAGMENTS[(change.kind, change.action)] = (
            f'"kind": {_string(change.kind)}, "severity": {_string(change.severity)}, '
            f'"rule": {_string(change.rule)}'
        )
    respondent_id = change.respondent_id
    instrument = change.instrument
    tail = (
        f', "opened_session": {change.opened_session}}}\n' if change.action == "resolve" else "}\n"
    )
    return (
        f'{{"episode_id": {_string(change.episode_id)}, "session": {change.session}, {fixed}, '
        f'"respondent_id": {_string(respondent_id or change.triggered_by)}, '
        f'"status": "{"opened" if change.action == "open" else "resolved"}", '
        f'"instrument": {"null" if instrument is None else _string(instrument)}, '
        f'"scope": "{"episode" if respondent_id is None else "respondent"}", '
        f'"inputs": {_encode(change.inputs)}, '
        f'"suggestion_code": {_string(change.suggestion_code)}, '
        f'"suggestion": {_string(change.suggestion)}, '
        f'"site_id": {_string(record.site_id)}, "therapist_id": {_string(record.therapist_id)}, '
        f'"line": {lineno}{tail}'
    )


def output_line(change: AlertChange, record: Any, lineno: int | None) -> dict[str, Any]:
    """One output object: the required fields first, then the rest (see :func:`format_line`)."""
    out: dict[str, Any] = {
        "episode_id": change.episode_id,
        "session": change.session,
        "kind": change.kind,
        "severity": change.severity,
        "rule": change.rule,
        "respondent_id": change.respondent_id or change.triggered_by,
        "status": "opened" if change.action == "open" else "resolved",
        "instrument": change.instrument,
        "scope": "respondent" if change.respondent_id is not None else "episode",
        "inputs": change.inputs,
        "suggestion_code": change.suggestion_code,
        "suggestion": change.suggestion,
        "site_id": record.site_id,
        "therapist_id": record.therapist_id,
        "line": lineno,
    }
    if change.action == "resolve":
        out["opened_session"] = change.opened_session
    return out


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("file", help="feedback records, one JSON object per line (JSONL)")
    parser.add_argument("--out", default="-", help="where to write the alerts (default: stdout)")
    parser.add_argument(
        "--include-resolved",
        action="store_true",
        help='also write resolved alerts, with "status": "resolved"',
    )
    parser.add_argument(
        "--strict-ranges",
        action="store_true",
        help="skip lines whose item values are outside the instrument's range or step (by "
        "default they are replayed as given, with a warning)",
    )
    parser.add_argument("--config", help="per-site rule configuration (JSON)")
    parser.add_argument(
        "--trajectories",
        metavar="MODEL.json",
        help="an expected-trajectories model (rapport trajectories fit) for rule 9, as analytics "
        "uses it",
    )
    parser.add_argument(
        "--as-of",
        metavar="TIME",
        help="at the end, move the replay's clock to TIME (ISO 8601 with offset) and fire the "
        "time-driven checks due by then (no_contact, drop-out risk)",
    )
    parser.add_argument(
        "--time-zones",
        metavar="JSON",
        help='each site\'s IANA time zone: a JSON object (e.g. {"site-a": "Europe/Berlin"}) or '
        "a file holding one, as RAPPORT_SITE_TIME_ZONES; days without contact are counted on "
        "the site's calendar",
    )
    parser.add_argument(
        "--dropout-after-days",
        metavar="DAYS",
        type=int,
        choices=range(1, 366),
        default=DROPOUT_AFTER_DAYS,
        help="as intake's dropout_after_days: an active episode silent this many site-local "
        "days drops out and is followed no more until the client returns (default: 28)",
    )
    parser.add_argument(
        "--default-time-zone",
        metavar="ZONE",
        default="UTC",
        help="the time zone of a site not named in --time-zones (default: UTC)",
    )
    parser.add_argument(
        "--instruments",
        action="append",
        default=[],
        help="a folder of extra instrument definitions (repeatable)",
    )
    return parser


def _time_zones(text: str | None, default: str) -> SiteTimeZones:
    """``--time-zones`` (a JSON object, or a file holding one) and ``--default-time-zone``;
    ``ValueError`` saying what is wrong."""
    from shared.site_time import SiteTimeZones

    if text and not text.lstrip().startswith("{"):
        text = Path(text).read_text(encoding="utf-8")
    try:
        return SiteTimeZones.parse(text, default)
    except json.JSONDecodeError as error:
        raise ValueError(f"--time-zones: not JSON: {error}") from None
    except ValueError as error:
        raise ValueError(f"--time-zones: {error}") from None


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog="rapport replay",
            description="Run the analytics alert rules offline over feedback records.",
        )
    )


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    args = argv if isinstance(argv, argparse.Namespace) else build_parser().parse_args(argv)
    from shared.instruments import SHIPPED, load_instruments

    err = sys.stderr
    default: RuleConfig | None = None
    sites: dict[str, RuleConfig] = {}
    trajectories: Trajectories | None = None
    try:
        zones = _time_zones(args.time_zones, args.default_time_zone)
        as_of = instant(args.as_of, "--as-of") if args.as_of else None
        instruments = load_instruments(SHIPPED, *(Path(p) for p in args.instruments))
        if args.config:
            from services.analytics.rules_config import load_site_configs

            default, sites = load_site_configs(Path(args.config))
        if args.trajectories:
            from rapport.trajectories.model import load_model

            model_text = Path(args.trajectories).read_bytes()
            trajectories = load_model(model_text, instruments).instruments
    except (OSError, ValueError) as error:
        print(f"rapport replay: {error}", file=err)
        return 2
    path = Path(args.file)
    try:
        source = path.open("rb")
    except OSError as error:
        print(f"rapport replay: cannot open {path}: {error.strerror or error}", file=err)
        return 2
    with source:
        out: TextIO
        if args.out in (None, "-"):
            out = sys.stdout
        else:
            try:
                out = open(args.out, "w", encoding="utf-8")
            except OSError as error:
                print(f"rapport replay: cannot write {args.out}: {error}", file=err)
                return 2

        def report(lineno: int, reason: str) -> None:
            print(f"{path}:{lineno}: {reason}", file=err)

        try:
            stats = replay_lines(
                source,
                instruments,
                out.write,
                default_config=default,
                site_configs=sites,
                include_resolved=args.include_resolved,
                lenient_ranges=not args.strict_ranges,
                report=report,
                trajectories=trajectories,
                zones=zones,
                as_of=as_of,
                dropout_after_days=args.dropout_after_days,
            )
        finally:
            if out is not sys.stdout:
                out.close()
            else:
                out.flush()
    resolved = f", {stats.resolved} resolved" if args.include_resolved else ""
    late = f", {stats.late_records} late" if stats.late_records else ""
    lenient = f" ({stats.out_of_range} out-of-range accepted)" if not args.strict_ranges else ""
    print(
        f"rapport replay: {stats.records} records ({stats.episodes} episodes{late}), "
        f"{stats.opened} alerts opened{resolved}, {stats.bad_lines} bad lines{lenient}, "
        f"{stats.sessions} session lines, {stats.checks_fired} time-driven checks fell due, "
        f"{stats.records_per_s:,.0f} records/s",
        file=err,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
