"""Imports staff already have: the therapist registry and a site's waiting list as CSV (a
header row; a list in one cell separated by ``;``; weekly times as ``mon 09:00-17:00``), read
into the same request models as the JSON routes and checked whole before anything is stored:
every bad cell is reported with its line and column, and an import is all or nothing.

The waiting-list import creates intakes that wait (``intake.submitted`` each, no proposal):
the coordinator then assigns the whole list at once (``…/waiting-list/assign``) or proposes
for one client. A client already waiting at the site is left as they are (a list imported
twice creates nobody twice)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.weekly_times import UnreadableTimes, weekly_slots
from services.intake.errors import invalid
from services.intake.mapping import IntakeIn, TherapistIn
from services.intake.models import IntakeIntake
from services.intake.usecases.proposals import new_intake, store_intake
from services.intake.usecases.registry import therapist_errors
from shared.csv_table import (
    CsvRow,
    bool_cell,
    cell_error,
    list_cell,
    read_csv,
    refused,
    validation_errors,
)
from shared.errors import Invalid

THERAPIST_LISTS = ("sites", "languages", "background", "modalities", "scopes", "domains")
THERAPIST_COLUMNS = (
    "id",
    *THERAPIST_LISTS,
    "capacity",
    "caseload",
    "gender",
    "telehealth",
    "availability",
    "years_experience",
    "active",
    "exclusions",
    "accepts_new_clients_from",
)
THERAPIST_REQUIRED = ("id", "sites", "languages", "capacity")

# Waiting-list columns → where each lands in an intake (``IntakeIn``).
PREFERENCE_COLUMNS = {
    "preferred_gender": "gender",
    "preferred_language": "language",
    "preferred_culture_faith": "culture_faith",
    "preferred_modality": "modality",
    "preferred_format": "format",
    "preferred_site": "site",
}
HISTORY_COLUMNS = ("prior_therapy", "difficult_past_relationships")
INTAKE_COLUMNS = (
    "client_reference",
    "domains",
    "languages",
    "risk",
    "unit",
    "age_group",
    "members",
    *HISTORY_COLUMNS,
    *PREFERENCE_COLUMNS,
    "preferred_times",
)
INTAKE_REQUIRED = ("client_reference", "domains", "languages")
# Where a model's error path points back to a column (the first one or two path elements).
INTAKE_FIELD_COLUMNS = {
    **{f"preferences.{key}": column for column, key in PREFERENCE_COLUMNS.items()},
    "preferences.times": "preferred_times",
    **{f"history.{column}": column for column in HISTORY_COLUMNS},
}
REQUIRED_PREFIX = "required:"


Model = TypeVar("Model", bound=BaseModel)
NO_RENAMES: Mapping[str, str] = {}


@dataclass(frozen=True)
class Imported(Generic[Model]):
    """One CSV row read into its request model."""

    line: int
    item: Model


def _times(row: CsvRow, column: str) -> list[dict[str, int]] | dict[str, Any]:
    try:
        slots = weekly_slots(row.cells[column])
    except UnreadableTimes as error:
        wrong = cell_error(row.line, column, "weekly_time", str(error))
        raise Invalid(str(error), errors=[wrong]) from None
    return [
        {"day": s.day, "start_minute": s.start_minute, "end_minute": s.end_minute} for s in slots
    ]


def _model(
    row: CsvRow, model: type[Model], fields: dict[str, Any], columns: Mapping[str, str]
) -> tuple[Model | None, list[dict[str, Any]]]:
    try:
        return model.model_validate(fields), []
    except ValidationError as error:
        return None, validation_errors(row, error, dict(columns))


def _column_of(field_name: str, columns: Mapping[str, str]) -> str:
    parts = field_name.split(".")
    return columns.get(".".join(parts[:2]), columns.get(parts[0], parts[0]))


def _at_line(
    row: CsvRow, errors: Sequence[dict[str, Any]], columns: Mapping[str, str] = NO_RENAMES
) -> list[dict[str, Any]]:
    """A model's or the engine's errors (dotted fields) as errors of the row's cells."""
    return [
        {**cell_error(row.line, _column_of(e["field"], columns), e["rule"], e["message"])}
        | ({"path": e["field"]} if "." in e["field"] else {})
        for e in errors
    ]


def _repeated(rows: Sequence[CsvRow], column: str) -> list[dict[str, Any]]:
    """A value of a column that must be unique, named on each line that repeats it."""
    first: dict[str, int] = {}
    errors = []
    for row in rows:
        value = row.cells.get(column)
        if value is None:
            continue
        if value in first:
            errors.append(
                cell_error(
                    row.line, column, "unique", f"{value!r} is already on line {first[value]}"
                )
            )
        first.setdefault(value, row.line)
    return errors


def _therapist_fields(row: CsvRow, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The row as the JSON route's fields; an unreadable cell is added to ``errors`` and left
    out (so the row's other cells are still checked)."""
    fields: dict[str, Any] = dict(row.cells)
    for column in (*THERAPIST_LISTS, "exclusions"):
        if column in fields:
            fields[column] = list_cell(fields[column])
    for column in ("telehealth", "active"):
        if column in fields:
            fields[column] = bool_cell(fields[column])
    if "availability" in fields:
        try:
            fields["availability"] = _times(row, "availability")
        except Invalid as error:
            errors += error.errors
            del fields["availability"]
    return fields


def therapists_from_csv(body: bytes) -> list[Imported[TherapistIn]]:
    """Every therapist of a registry CSV, or one 422 naming every bad cell of every row."""
    rows = read_csv(body, THERAPIST_COLUMNS, THERAPIST_REQUIRED)
    errors = _repeated(rows, "id")
    read: list[Imported[TherapistIn]] = []
    for row in rows:
        unreadable: list[dict[str, Any]] = []
        fields = _therapist_fields(row, unreadable)
        errors += unreadable
        item, problems = _model(row, TherapistIn, fields, NO_RENAMES)
        if item is None:
            errors += problems
            continue
        if not unreadable:
            errors += _at_line(row, therapist_errors(item, item.id))
        read.append(Imported(row.line, item))
    if errors or not rows:
        raise refused(errors or [cell_error(2, "(row)", "required", "no therapist in the file")])
    return read


def _strength(cell: str) -> tuple[str, str]:
    """``required: a; b`` → ("required", "a; b"); without the prefix, preferred."""
    if cell.lower().startswith(REQUIRED_PREFIX):
        return "required", cell[len(REQUIRED_PREFIX) :]
    return "preferred", cell


def _preference(row: CsvRow, column: str) -> dict[str, Any]:
    strength, cell = _strength(row.cells[column])
    return {"codes": list_cell(cell), "strength": strength}


def _pairs(cell: str, first: str, second: str, default: str | None) -> list[dict[str, str]]:
    """``code:severity; code`` or ``role:reference`` → [{first: …, second: …}, …]."""
    out = []
    for part in list_cell(cell):
        head, _, tail = part.partition(":")
        pair = {first: head.strip()}
        if tail.strip() or default is None:
            pair[second] = tail.strip()
        elif default:
            pair[second] = default
        out.append(pair)
    return out


def _intake_fields(row: CsvRow, site_id: str) -> dict[str, Any]:
    cells = row.cells
    fields: dict[str, Any] = {"site_id": site_id}
    if "domains" in cells:
        fields["domains"] = _pairs(cells["domains"], "code", "severity", "moderate")
    if "languages" in cells:
        fields["languages"] = list_cell(cells["languages"])
    for column in ("client_reference", "unit", "age_group"):
        if column in cells:
            fields[column] = cells[column]
    if "risk" in cells:
        fields["risk"] = bool_cell(cells["risk"])
    if "members" in cells:
        members = _pairs(cells["members"], "role", "reference", None)
        fields["members"] = [
            {"role": m["role"], "reference": m.get("reference", "")} for m in members
        ]
    history = {c: bool_cell(cells[c]) for c in HISTORY_COLUMNS if c in cells}
    if history:
        fields["history"] = history
    preferences = {key: _preference(row, c) for c, key in PREFERENCE_COLUMNS.items() if c in cells}
    if "preferred_times" in cells:
        strength, cell = _strength(cells["preferred_times"])
        windows = _times(CsvRow(row.line, {"preferred_times": cell}), "preferred_times")
        preferences["times"] = {"windows": windows, "strength": strength}
    if preferences:
        fields["preferences"] = preferences
    return fields


def intakes_from_csv(
    deps: IntakeDependencies, site_id: str, body: bytes
) -> list[tuple[int, IntakeIn, IntakeIntake]]:
    """Every client of a waiting-list CSV with the intake row it would create (reference not
    yet sealed), or one 422 naming every bad cell of every row."""
    rows = read_csv(body, INTAKE_COLUMNS, INTAKE_REQUIRED)
    errors = _repeated(rows, "client_reference")
    read: list[tuple[int, IntakeIn, IntakeIntake]] = []
    for row in rows:
        try:
            item, problems = _model(
                row, IntakeIn, _intake_fields(row, site_id), INTAKE_FIELD_COLUMNS
            )
            if item is None:
                errors += problems
                continue
            read.append((row.line, item, new_intake(deps, item)))
        except Invalid as error:
            in_cells = all("line" in e for e in error.errors)
            errors += (
                error.errors if in_cells else _at_line(row, error.errors, INTAKE_FIELD_COLUMNS)
            )
    if errors or not rows:
        raise refused(errors or [cell_error(2, "(row)", "required", "no client in the file")])
    return read


def intakes_from_json(
    deps: IntakeDependencies, site_id: str, clients: Sequence[IntakeIn]
) -> list[tuple[int, IntakeIn, IntakeIntake]]:
    """Every client of a JSON waiting list (each at ``site_id``) with the intake row it would
    create, or one 422 naming every field of every client (``3.languages.0``)."""
    errors: list[dict[str, Any]] = []
    read: list[tuple[int, IntakeIn, IntakeIntake]] = []
    references = [c.client_reference for c in clients]
    for k, client in enumerate(clients):
        if client.site_id != site_id:
            errors.append(
                {"field": f"{k}.site_id", "rule": "same_site", "message": f"must be {site_id}"}
            )
        elif client.client_reference in references[:k]:
            errors.append(
                {"field": f"{k}.client_reference", "rule": "unique", "message": "repeated"}
            )
        try:
            read.append((k, client, new_intake(deps, client)))
        except Invalid as error:
            errors += [{**e, "field": f"{k}.{e['field']}"} for e in error.errors]
    if errors:
        raise invalid(errors)
    return read


@dataclass(frozen=True)
class WaitingListImport:
    created: list[str]  # the new intakes' ids, in the file's order
    already_waiting: int


async def import_waiting_list(
    deps: IntakeDependencies,
    session: AsyncSession,
    site_id: str,
    intakes: Sequence[tuple[int, IntakeIn, IntakeIntake]],
) -> WaitingListImport:
    """Store each client who is not already waiting at the site as a waiting intake
    (``intake.submitted``; no proposal)."""
    waiting = set(
        (
            await session.execute(
                select(IntakeIntake.client).where(  # type: ignore[call-overload]
                    IntakeIntake.site_id == site_id,
                    IntakeIntake.status == "waiting",
                )
            )
        )
        .scalars()
        .all()
    )
    created: list[str] = []
    for _, body, row in intakes:
        if row.client in waiting:
            continue
        await store_intake(deps, session, row, body)
        waiting.add(row.client)
        created.append(row.id)
    return WaitingListImport(created, len(intakes) - len(created))
