"""``/notify/policies/{site_id}``: the routing policy a site uses (site admins write; leads and
supervisors read). A malformed one is refused naming the field."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.notify.dependencies import Deps
from services.notify.mapping import PolicyOut
from services.notify.policy import RoutingPolicy
from services.notify.routes.params import SiteId
from services.notify.usecases import policies
from shared.auth import CurrentStaff

router = APIRouter()
POLICY_READERS = ("site_admin", "clinical_lead", "supervisor")


@router.get(
    "/policies/{site_id}", response_model=PolicyOut, summary="The routing policy a site uses"
)
async def get_policy(deps: Deps, site_id: SiteId, staff: CurrentStaff) -> PolicyOut:
    staff.require_role(*POLICY_READERS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        return await policies.policy_of(deps, session, site_id)


@router.put(
    "/policies/{site_id}",
    response_model=PolicyOut,
    summary="Store a site's routing policy (a malformed one is refused, naming the field)",
)
async def put_policy(
    deps: Deps, site_id: SiteId, body: RoutingPolicy, staff: CurrentStaff
) -> PolicyOut:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.transaction() as session:
        row = await policies.store_policy(session, site_id, body, staff.subject)
    deps.policies.forget(site_id)  # after the commit: this replica sees it at once
    return PolicyOut(
        site_id=site_id,
        source="site",
        policy=body,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


@router.delete(
    "/policies/{site_id}",
    status_code=204,
    response_class=Response,
    summary="Drop a site's stored policy (the configured or default one applies again)",
)
async def delete_policy(deps: Deps, site_id: SiteId, staff: CurrentStaff) -> Response:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.transaction() as session:
        await policies.drop_policy(session, site_id)
    deps.policies.forget(site_id)
    return Response(status_code=204)
