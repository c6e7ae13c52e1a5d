"""Auth, users, organizations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from grove_api.models.common import ObjectIdRef, Strict


class LoginRequest(Strict):
    username: str = Field(examples=["Admin"])
    password: str = Field(examples=["Admin"])
    organization_name: str | None = Field(None, description="default: the root organization")


class TokenPair(BaseModel):
    token: str = Field(description="access token (JWT, 10 minutes): send as `Authorization: Bearer ...`")
    refresh_token: str = Field(description="refresh token (JWT, 7 days) for POST /api/auth/refresh")


class AccessToken(BaseModel):
    token: str


class UserOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: ObjectIdRef = Field(alias="_id")
    name: str
    email: str
    created_at: str
    roles: list[str]


class RegisterRequest(Strict):
    name: str
    password: str
    email: str = ""
    roles: list[str] = Field(default_factory=list, examples=[["Application_Provider"]])


class UserUpdate(Strict):
    email: str | None = None
    roles: list[str] | None = None
    password: str | None = Field(None, description="required when the user does not exist yet")


class PasswordChange(Strict):
    oldPassword: str
    newPassword: str


class RolesOut(BaseModel):
    roles: list[str]


class Member(Strict):
    user_id: str = Field(pattern=r"^[0-9a-f]{24}$")
    roles: list[str] = Field(default_factory=list)


class OrganizationIn(Strict):
    name: str
    member: list[Member] = Field(default_factory=list)


class OrganizationUpdate(Strict):
    name: str | None = None
    member: list[Member] | None = None


class OrganizationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: ObjectIdRef = Field(alias="_id")
    name: str
    member: list[Member]
