"""A day's session diary in one call (JSON or CSV): services/feedback/usecases/diary.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import Field, TypeAdapter

from services.feedback.dependencies import Deps
from services.feedback.mapping import DiaryLineOut, DiaryOut
from services.feedback.routes.parameters import STAFF_WHO_RECORD
from services.feedback.usecases import diary
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.csv_table import CSV_MEDIA_TYPE
from shared.request_bodies import is_csv, json_body

router = APIRouter()

DIARY = TypeAdapter(
    Annotated[list[diary.DiaryFactIn], Field(min_length=1, max_length=diary.MAX_DIARY_LINES)]
)
DIARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            CSV_MEDIA_TYPE: {
                "schema": {"type": "string"},
                "example": "episode_id,session_number,status,at,notice_hours\n"
                "ep-1,4,attended,2026-12-08T09:00:00+01:00,\n"
                "ep-2,7,cancelled_by_client,2026-12-08T11:00:00+01:00,30\n",
            },
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/DiaryFactIn"},
                    "maxItems": diary.MAX_DIARY_LINES,
                }
            },
        },
    }
}


def _diary_lines(request: Request, body: bytes) -> tuple[list[diary.DiaryLine], diary.ErrorNamer]:
    """The diary's facts as sent (CSV or JSON), and how a refused line is named."""
    if is_csv(request):
        return diary.diary_from_csv(body), diary.csv_error
    facts = json_body(DIARY, body)
    return [diary.DiaryLine(k, f) for k, f in enumerate(facts)], diary.json_error


@router.post(
    "/sites/{site_id}/session-diary",
    response_model=DiaryOut,
    summary="A day's session diary: facts for several episodes of the site, all or nothing "
    "(CSV or JSON)",
    description="`text/csv` with a header row (`episode_id`, `session_number`, `status` "
    "required; `at` with its UTC offset, `notice_hours`, `cancelled_at`), or a JSON list of "
    "the same fields. `status` is scheduled, attended, missed, cancelled_by_client or "
    "cancelled_by_clinic. Every line is checked before anything is stored and the diary is "
    "stored whole or not at all: a bad line (a CSV cell, a fact that disagrees with the "
    "stored session, an unknown or ended episode) is named by its `line` and `column` (CSV; "
    "the header is line 1) or its index (JSON). Each fact is idempotent (`unchanged` when "
    "already so); `dry_run=true` checks and counts without storing.",
    openapi_extra=DIARY_BODY,
    dependencies=[audited("feedback", "session_diary.import", "site", "site_id")],
)
async def import_session_diary(
    deps: Deps,
    site_id: Id,
    request: Request,
    staff: CurrentStaff,
    dry_run: Annotated[
        bool, Query(description="Check every line and count what would change; store nothing.")
    ] = False,
) -> DiaryOut:
    staff.require_role(*STAFF_WHO_RECORD)
    staff.require_site(site_id)
    lines, name_error = _diary_lines(request, await request.body())
    if dry_run:
        async with deps.runtime.sessionmaker() as session:
            results = await diary.record_diary(deps, session, staff, site_id, lines, name_error)
            await session.rollback()
    else:
        async with deps.runtime.transaction() as session:
            results = await diary.record_diary(deps, session, staff, site_id, lines, name_error)
    recorded = sum(1 for r in results if r.result == "recorded")
    return DiaryOut(
        site_id=site_id,
        recorded=recorded,
        unchanged=len(results) - recorded,
        lines=[
            DiaryLineOut(
                line=r.where,
                episode_id=r.episode_id,
                session_number=r.session_number,
                status=r.status,
                result=r.result,
            )
            for r in results
        ],
        dry_run=dry_run,
    )
