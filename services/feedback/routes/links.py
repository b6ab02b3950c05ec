"""One-time feedback links: what a link asks, and the client's answers (no login)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from services.feedback import mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import LinkForm, ResponseOut
from services.feedback.routes.parameters import ItemValue
from services.feedback.usecases import links

router = APIRouter()

Token = Annotated[str, Field(max_length=2048)]


class LinkAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instrument: str = Field(min_length=1, max_length=64)
    items: dict[Annotated[str, Field(max_length=64)], ItemValue] = Field(max_length=100)


class LinkSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    responses: list[LinkAnswer] = Field(min_length=1, max_length=5)
    comment: str | None = Field(default=None, max_length=4000)
    notice_version: int | None = Field(
        default=None,
        ge=0,
        description="The version of the confidentiality notice the client was shown (the "
        "form's `notice.version`); needed when a risk item is answered.",
    )


@router.get(
    "/r/{token}",
    response_model=LinkForm,
    summary="What a one-time feedback link asks, with the site's confidentiality notice (for "
    "the client's front-end)",
)
async def link_form(deps: Deps, token: Token) -> LinkForm:
    asked = await links.link_questions(deps, token)
    return mapping.link_form(asked.grant, asked.instruments, asked.notice)


@router.post(
    "/r/{token}",
    status_code=201,
    response_model=list[ResponseOut],
    summary="Answer through a one-time feedback link (no login)",
    responses={200: {"model": list[ResponseOut], "description": "Already answered"}},
)
async def answer_link(
    response: Response, deps: Deps, token: Token, body: LinkSubmission
) -> list[ResponseOut]:
    answers = [links.QuestionnaireAnswers(a.instrument, dict(a.items)) for a in body.responses]
    results, replayed = await links.answer_link(
        deps, token, answers, body.comment, body.notice_version
    )
    if replayed:
        response.status_code = 200
    return [mapping.response_out(r.event) for r in results]
