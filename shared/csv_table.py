"""CSV bodies as staff export them from a spreadsheet: UTF-8 (a byte-order mark is fine), a
header row naming the columns, one record a line; a list in one cell separated by ``;``.

The reader checks the file as a whole (encoding, header: an unknown, missing or repeated
column) and hands back its rows with their line numbers; everything it refuses is an
:class:`shared.errors.Invalid` whose ``errors`` name the ``line`` and ``column`` of each
problem (the header is line 1), so an import can report every bad row before it stores
anything. Pure: no I/O beyond the bytes given.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.errors import Invalid
from shared.problems import field_error

CSV_MEDIA_TYPE = "text/csv"
LIST_SEPARATOR = ";"
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})


@dataclass(frozen=True)
class CsvRow:
    """One record: its line in the file (the header is line 1) and its non-empty cells."""

    line: int
    cells: dict[str, str]


def cell_error(line: int, column: str, rule: str, message: str) -> dict[str, Any]:
    """One problem+json error naming a cell: ``field`` is the column, ``line`` the file line."""
    return {"field": column, "rule": rule, "message": message, "line": line, "column": column}


def refused(errors: Sequence[dict[str, Any]]) -> Invalid:
    """A 422 naming every bad cell, in the file's order; the detail names the first (and how
    many more)."""
    errors = sorted(errors, key=lambda e: int(e.get("line", 0)))
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"line {first['line']}, column {first['column']}" if "line" in first else "body"
    return Invalid(
        f"{where}: {first['message']}{more}. Nothing was stored.",
        errors=list(errors),
    )


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = body[: error.start].count(b"\n") + 1
        raise refused(
            [
                cell_error(
                    line,
                    "(file)",
                    "encoding",
                    f"the file is not UTF-8 (byte {error.start} on line {line}); "
                    "save it as 'CSV UTF-8'",
                )
            ]
        ) from None


def read_csv(body: bytes, known: Collection[str], required: Collection[str] = ()) -> list[CsvRow]:
    """The rows of a CSV body whose header names only ``known`` columns and every ``required``
    one; a blank line is skipped, an empty cell left out of the row's cells."""
    lines = _text(body).splitlines(keepends=True)
    reader = csv.reader(lines, strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as error:
        raise refused([cell_error(1, "(header)", "csv", str(error))]) from None
    header_errors = [
        cell_error(
            1,
            h or f"(column {k + 1})",
            "unknown_column",
            f"unknown column {h!r}; the columns are {', '.join(sorted(known))}",
        )
        for k, h in enumerate(header)
        if h not in known
    ]
    header_errors += [
        cell_error(1, h, "unique", f"column {h!r} appears more than once")
        for h in sorted({h for h in header if header.count(h) > 1})
    ]
    header_errors += [
        cell_error(1, c, "required", f"the header has no column {c!r}")
        for c in sorted(set(required) - set(header))
    ]
    if not header or header_errors:
        raise refused(header_errors or [cell_error(1, "(header)", "required", "no header row")])
    rows: list[CsvRow] = []
    errors: list[dict[str, Any]] = []
    while True:
        try:
            record = next(reader, None)
        except csv.Error as error:
            errors.append(cell_error(reader.line_num, "(row)", "csv", str(error)))
            break
        if record is None:
            break
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(header):
            errors.append(
                cell_error(
                    reader.line_num,
                    "(row)",
                    "columns",
                    f"{len(record)} cells for {len(header)} columns",
                )
            )
            continue
        cells = {h: c.strip() for h, c in zip(header, record, strict=False) if c.strip()}
        rows.append(CsvRow(reader.line_num, cells))
    if errors:
        raise refused(errors)
    return rows


def list_cell(value: str) -> list[str]:
    """A list in one cell: ``en; fr`` → ``["en", "fr"]`` (blanks dropped)."""
    return [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]


def bool_cell(value: str) -> bool | str:
    """``true``/``yes``/``1`` or ``false``/``no``/``0`` (any case); anything else is returned
    as given, for the model's own check to refuse with its usual message."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return value


def validation_errors(
    row: CsvRow, error: ValidationError, columns: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """A model's refusal of one row, each error naming the row's line and its column (the
    first element of the error's path, or ``columns[first element]`` or ``columns[first.second]``
    when the row's cells were renamed or nested on the way to the model)."""
    out = []
    for e in error.errors():
        loc = [str(p) for p in e.get("loc", ())]
        top = loc[0] if loc else "(row)"
        renames = columns or {}
        column = renames.get(".".join(loc[:2]), renames.get(top, top))
        named = field_error(dict(e))
        message = str(named["message"])
        if len(loc) > 1:
            message = f"{'.'.join(loc[1:])}: {message}"
        one = cell_error(row.line, column, str(named["rule"]), message)
        if "valid" in named:
            one["valid"] = named["valid"]
        out.append(one)
    return out
