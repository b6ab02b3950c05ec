"""Feedback records in the replay format, streamed into a :class:`TrajectoryFit`.

Each line is checked as ``rapport replay`` checks it (the same fields, the same messages, the
same item checks and scoring: :class:`rapport.replay.AnswerChecker`); a bad line is reported
with its number and skipped. Of the good lines, those by a client on an outcome instrument (one
with a clinical direction: ORS, PHQ-9, GAD-7, CORE-10, a site's own) go into the fit; the rest
(alliance measures, partners, family, therapists) are counted and left out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rapport.replay import ROLES, AnswerChecker, BadLine, OutOfRange, json_object_reader
from rapport.trajectories.fit import MAX_SESSION, TrajectoryFit

if TYPE_CHECKING:
    from shared.instruments import Instrument

_STRING_FIELDS = ("episode_id", "site_id", "therapist_id", "respondent_id", "instrument")
_FIELDS = (*_STRING_FIELDS, "session", "at", "respondent", "items")
_FIELD_SET = frozenset(_FIELDS)


@dataclass
class ReadCounts:
    lines: int = 0
    records: int = 0  # good lines
    bad_lines: int = 0
    out_of_range: int = 0  # accepted as given, with a warning (not with strict ranges)


def fitted_instruments(instruments: Mapping[str, Instrument]) -> frozenset[str]:
    """The instruments a model is fitted for: not alliance measures, with a clinical
    direction (the instruments analytics' rules 8 and 9 apply to)."""
    return frozenset(
        iid for iid, i in instruments.items() if i.kind != "alliance" and i.clinical is not None
    )


def read_into(
    fit: TrajectoryFit,
    lines: Iterable[bytes | str],
    instruments: Mapping[str, Instrument],
    *,
    lenient_ranges: bool = True,
    report: Callable[[int, str], object] | None = None,
) -> ReadCounts:
    """Check each line and add the client outcome scores to ``fit``; ``report`` gets each bad
    line's number and reason (and each out-of-range line accepted as given)."""
    checkers = {iid: AnswerChecker(inst) for iid, inst in instruments.items()}
    outcome = fitted_instruments(instruments)
    json_object = json_object_reader()
    counts = ReadCounts()
    intern = sys.intern
    add = fit.add
    last_at = None
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        try:
            obj = json_object(raw)
            if obj is None:  # a blank line
                continue
            checker = _checked_fields(obj, checkers)
            at = obj["at"]
            if at is not None and at != last_at:
                _check_at(at)
                last_at = at
            try:
                total = checker.total(obj["items"])
            except OutOfRange as error:
                if not lenient_ranges:
                    raise
                total = checker.total_unchecked(obj["items"])
                counts.out_of_range += 1
                if report is not None:
                    report(lineno, f"warning: {error} (fitted as given; --strict-ranges skips)")
        except (BadLine, UnicodeDecodeError) as error:
            counts.bad_lines += 1
            if report is not None:
                report(lineno, str(error))
            continue
        counts.records += 1
        if checker.id in outcome and obj["respondent"] == "client":
            add(
                checker.id,
                intern(obj["episode_id"]),
                intern(obj["respondent_id"]),
                obj["session"],
                total,
            )
    counts.lines = lineno
    return counts


def _checked_fields(obj: dict[str, Any], checkers: Mapping[str, AnswerChecker]) -> AnswerChecker:
    """The line's fields checked as the replay checks them (but ``at``: :func:`_check_at`);
    the instrument's checker."""
    if not obj.keys() >= _FIELD_SET:
        missing = [f for f in _FIELDS if f not in obj]
        raise BadLine(f"missing field(s) {', '.join(missing)}")
    strings = [obj[name] for name in _STRING_FIELDS]
    session = obj["session"]
    role = obj["respondent"]
    for name, value in zip(_STRING_FIELDS, strings, strict=True):
        if type(value) is not str or not value:
            raise BadLine(f"{name} must be a non-empty string, got {value!r}")
    if type(session) is not int or session < 1:
        raise BadLine(f"session must be an integer from 1, got {session!r}")
    if session > MAX_SESSION:
        raise BadLine(f"session must be at most {MAX_SESSION} to be fitted, got {session}")
    if type(role) is not str or role not in ROLES:
        raise BadLine(f"respondent must be one of {', '.join(sorted(ROLES))}")
    checker = checkers.get(strings[4])
    if checker is None:
        raise BadLine(f"unknown instrument {strings[4]!r}")
    if role not in checker.respondents:
        raise BadLine(f"{strings[4]} may not be answered by a {role}")
    return checker


def _check_at(at_text: object) -> None:
    if type(at_text) is not str:
        raise BadLine("at must be an ISO 8601 date-time")
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError:
        raise BadLine(f"at must be an ISO 8601 date-time, got {at_text!r}") from None
    if at.tzinfo is None:
        raise BadLine("at must carry a UTC offset (e.g. 'Z')")
