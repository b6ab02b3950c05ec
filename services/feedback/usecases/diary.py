"""A day's session diary in one call (issue 16), as JSON or as the CSV staff export from their
scheduling system (issue 20): a list of facts for several episodes of one site. Every line is
read and checked first; then the facts are applied in the diary's order in one transaction,
all or nothing: one bad line (a fact that disagrees with what is stored, an unknown or ended
episode) refuses the whole diary naming every bad line, and nothing is stored. Each fact is
idempotent, so the same diary sent twice records nothing the second time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback import attendance
from services.feedback.dependencies import FeedbackDependencies
from services.feedback.usecases.sessions import apply_fact, reporting_episode
from shared.auth import Staff
from shared.contracts import Id, SessionStatus
from shared.csv_table import cell_error, read_csv, refused, validation_errors
from shared.errors import DomainError, Invalid

MAX_DIARY_LINES = 2000
DIARY_COLUMNS = ("episode_id", "session_number", "status", "at", "notice_hours", "cancelled_at")
DIARY_REQUIRED = ("episode_id", "session_number", "status")


class DiaryFactIn(BaseModel):
    """One line of a session diary: what happened to one session of one episode."""

    model_config = ConfigDict(extra="forbid")
    episode_id: Id
    session_number: int = Field(ge=1, le=1000)
    status: SessionStatus
    at: AwareDatetime | None = Field(
        default=None,
        description="When the session is (scheduled) or was, with its UTC offset (site-local "
        "time as the front-end shows it); may be left out for the outcome of a session "
        "scheduled earlier.",
    )
    notice_hours: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="A cancellation: hours of notice given (else from cancelled_at).",
    )
    cancelled_at: AwareDatetime | None = Field(
        default=None, description="A cancellation: when it was made."
    )

    def fact(self) -> attendance.Fact:
        return attendance.Fact(self.status, self.at, self.notice_hours, self.cancelled_at)


@dataclass(frozen=True)
class DiaryLine:
    """One fact of the diary and where it was: its file line (CSV) or its index (JSON)."""

    where: int
    fact: DiaryFactIn


@dataclass(frozen=True)
class DiaryResult:
    where: int
    episode_id: str
    session_number: int
    status: str
    result: Literal["recorded", "unchanged"]


# How a refusal of one line is named: (line, field, rule, message) → a problem+json error.
ErrorNamer = Callable[[DiaryLine, str, str, str], dict[str, Any]]


def csv_error(line: DiaryLine, field: str, rule: str, message: str) -> dict[str, Any]:
    column = "at" if field == "scheduled_for" else field
    return cell_error(line.where, column, rule, message)


def json_error(line: DiaryLine, field: str, rule: str, message: str) -> dict[str, Any]:
    name = "at" if field == "scheduled_for" else field
    return {"field": f"{line.where}.{name}", "rule": rule, "message": message}


def diary_from_csv(body: bytes) -> list[DiaryLine]:
    """Every fact of a diary CSV, or one 422 naming the line and column of every bad cell."""
    rows = read_csv(body, DIARY_COLUMNS, DIARY_REQUIRED)
    errors: list[dict[str, Any]] = []
    lines: list[DiaryLine] = []
    for row in rows:
        try:
            lines.append(DiaryLine(row.line, DiaryFactIn.model_validate(row.cells)))
        except ValidationError as error:
            errors += validation_errors(row, error)
    if not errors and not rows:
        errors.append(cell_error(2, "(row)", "required", "no session in the diary"))
    if not errors and len(rows) > MAX_DIARY_LINES:
        errors.append(
            cell_error(
                rows[MAX_DIARY_LINES].line,
                "(row)",
                "too_many_lines",
                f"a diary takes at most {MAX_DIARY_LINES} sessions",
            )
        )
    if errors:
        raise refused(errors)
    return lines


async def record_diary(
    deps: FeedbackDependencies,
    session: AsyncSession,
    staff: Staff,
    site_id: str,
    lines: Sequence[DiaryLine],
    name_error: ErrorNamer,
) -> list[DiaryResult]:
    """Apply every fact in the diary's order inside the caller's transaction; when any line is
    refused, one 422 naming every refused line (the caller's transaction then stores nothing)."""
    errors: list[dict[str, Any]] = []
    results: list[DiaryResult] = []
    for line in lines:
        fact = line.fact
        try:
            episode = await reporting_episode(session, staff, fact.episode_id, site_id)
            reported = await apply_fact(deps, session, episode, fact.session_number, fact.fact())
        except DomainError as refusal:
            errors += [
                name_error(
                    line,
                    str(e.get("field", "(row)")),
                    str(e.get("rule", "invalid")),
                    str(e.get("message", refusal.detail)),
                )
                for e in refusal.errors
            ]
            continue
        results.append(
            DiaryResult(
                line.where,
                fact.episode_id,
                fact.session_number,
                reported.row.status,
                "recorded" if reported.recorded else "unchanged",
            )
        )
    if errors:
        raise _refused_lines(errors)
    return results


def _refused_lines(errors: list[dict[str, Any]]) -> Invalid:
    if all("line" in e for e in errors):
        return refused(errors)
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Invalid(
        f"{first['field']}: {first['message']}{more}. Nothing was stored.", errors=errors
    )
