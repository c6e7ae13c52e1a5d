"""/api/organization (Admin)."""

from __future__ import annotations

from fastapi import APIRouter

from grove_api.deps import CurrentUser, GroveDep
from grove_api.models.accounts import OrganizationIn, OrganizationOut, OrganizationUpdate
from grove_api.models.common import Message
from grove_api.routers import errors

router = APIRouter(prefix="/api/organization", tags=["organizations"])


@router.get("", response_model=list[OrganizationOut], responses=errors(403))
async def list_organizations(grove: GroveDep, caller: CurrentUser) -> list[dict]:
    return grove.accounts.list_organizations(caller)


@router.post("", response_model=OrganizationOut, responses=errors(403, 409, 422))
def create_organization(body: OrganizationIn, grove: GroveDep, caller: CurrentUser) -> dict:
    member = [m.model_dump() for m in body.member]
    return grove.accounts.create_organization(caller, body.name, member)


@router.get("/{organization_id}", response_model=OrganizationOut, responses=errors(403, 404))
async def get_organization(organization_id: str, grove: GroveDep, caller: CurrentUser) -> dict:
    return grove.accounts.get_organization(caller, organization_id)


@router.put("/{organization_id}", response_model=OrganizationOut, responses=errors(403, 404, 409, 422))
def update_organization(
    organization_id: str, body: OrganizationUpdate, grove: GroveDep, caller: CurrentUser
) -> dict:
    member = None if body.member is None else [m.model_dump() for m in body.member]
    return grove.accounts.update_organization(caller, organization_id, body.name, member)


@router.delete("/{organization_id}", response_model=Message, responses=errors(403, 404, 409))
def delete_organization(organization_id: str, grove: GroveDep, caller: CurrentUser) -> dict:
    grove.accounts.delete_organization(caller, organization_id)
    return {"message": "organization deleted"}
