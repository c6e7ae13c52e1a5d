"""/api/user, /api/users, /api/permission."""

from __future__ import annotations

from fastapi import APIRouter

from grove_api.deps import CurrentUser, GroveDep
from grove_api.models.accounts import PasswordChange, RolesOut, UserOut, UserUpdate
from grove_api.models.common import Message
from grove_api.routers import errors

router = APIRouter(tags=["users"])


@router.get("/api/user/{username}", response_model=UserOut, responses=errors(404))
async def get_user(username: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """The user (the caller, or anyone for Admin). Never with the password hash."""
    return grove.accounts.get_user(caller, username)


@router.put("/api/user/{username}", response_model=UserOut, responses=errors(403, 422))
def put_user(username: str, body: UserUpdate, grove: GroveDep, caller: CurrentUser) -> dict:
    """Admin creates (password required) or updates a user's email, roles or password."""
    return grove.accounts.put_user(caller, username, body.model_dump())


@router.post("/api/user/{username}", response_model=Message, responses=errors(403, 404, 422))
def change_password(username: str, body: PasswordChange, grove: GroveDep, caller: CurrentUser) -> dict:
    """The caller changes their own password; tokens issued before stop working."""
    grove.accounts.change_password(caller, username, body.oldPassword, body.newPassword)
    return {"message": "password changed"}


@router.delete("/api/user/{username}", response_model=Message, responses=errors(403, 404, 409))
def delete_user(username: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """Admin deletes a user who owns no application."""
    grove.accounts.delete_user(caller, username)
    return {"message": f"user {username} deleted"}


@router.get("/api/users", response_model=list[UserOut], responses=errors(403))
async def list_users(grove: GroveDep, caller: CurrentUser) -> list[dict]:
    """Admin: every user."""
    return grove.accounts.list_users(caller)


@router.get("/api/users/{organization_id}", response_model=list[UserOut], responses=errors(403, 404))
async def list_organization_users(organization_id: str, grove: GroveDep, caller: CurrentUser) -> list[dict]:
    """Admin: the members of an organization, with their roles there."""
    return grove.accounts.list_organization_users(caller, organization_id)


@router.get("/api/permission/{username}", response_model=RolesOut, responses=errors(404))
async def permissions(username: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """The user's roles (the caller's own, or anyone's for Admin)."""
    return {"roles": grove.accounts.roles_of(caller, username)}
