"""The questionnaires this deployment scores."""

from __future__ import annotations

from fastapi import APIRouter

from services.feedback import mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import InstrumentOut
from shared.auth import CurrentStaff
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()


@router.get(
    "/instruments",
    response_model=list[InstrumentOut],
    summary="The questionnaires this deployment scores",
)
async def list_instruments(
    deps: Deps,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[InstrumentOut]:
    del staff
    return mapping.instruments_out(deps.instruments.values())[offset : offset + limit]
