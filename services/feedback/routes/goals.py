"""The client's own goals in an episode: set, revise (text, achieved, dropped, active again),
read. The text is the client's words, returned only to staff who may see the episode."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from services.feedback import mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import GoalOut
from services.feedback.routes.parameters import STAFF_WHO_READ, STAFF_WHO_RECORD
from services.feedback.usecases import goals
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()

GoalText = Annotated[str, Field(min_length=1, max_length=goals.TEXT_LIMIT)]


class GoalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: GoalText


class GoalChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: GoalText | None = None
    status: goals.GoalStatus | None = None


@router.post(
    "/episodes/{episode_id}/goals",
    status_code=201,
    response_model=GoalOut,
    summary="Set one of the client's goals, in their own words (at most 5 active)",
    dependencies=[audited("feedback", "goal.set", "episode", "episode_id")],
)
async def set_goal(deps: Deps, episode_id: Id, body: GoalIn, staff: CurrentStaff) -> GoalOut:
    staff.require_role(*STAFF_WHO_RECORD)
    goal = await goals.set_goal(deps, staff, episode_id, body.text)
    return mapping.goal_out(goal.row, goal.text)


@router.patch(
    "/episodes/{episode_id}/goals/{goal_id}",
    response_model=GoalOut,
    summary="Revise a goal (its words, or achieved / dropped / active again); each change is kept",
    dependencies=[audited("feedback", "goal.revise", "episode", "episode_id")],
)
async def revise_goal(
    deps: Deps, episode_id: Id, goal_id: Id, body: GoalChange, staff: CurrentStaff
) -> GoalOut:
    staff.require_role(*STAFF_WHO_RECORD)
    revised = await goals.revise_goal(deps, staff, episode_id, goal_id, body.text, body.status)
    return mapping.goal_out(revised.row, revised.text)


@router.get(
    "/episodes/{episode_id}/goals",
    response_model=list[GoalOut],
    summary="The episode's goals as they are now (or every revision, oldest first)",
    dependencies=[audited("feedback", "goals.read", "episode", "episode_id")],
)
async def episode_goals(
    deps: Deps,
    episode_id: Id,
    staff: CurrentStaff,
    history: Annotated[bool, Query(description="Every revision of each goal.")] = False,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[GoalOut]:
    staff.require_role(*STAFF_WHO_READ)
    found = await goals.episode_goals(deps, staff, episode_id, history=history)
    return [mapping.goal_out(g.row, g.text) for g in found[offset : offset + limit]]
