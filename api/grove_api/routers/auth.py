"""/api/auth: login, refresh, register."""

from __future__ import annotations

from fastapi import APIRouter, Request

from grove_api.deps import CurrentUser, GroveDep, TokenDep
from grove_api.models.accounts import AccessToken, LoginRequest, RegisterRequest, TokenPair, UserOut
from grove_api.routers import errors

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=TokenPair, responses=errors(404, 422, 429))
def login(body: LoginRequest, grove: GroveDep, request: Request) -> dict:
    """Log in: an access token (10 minutes) and a refresh token (7 days)."""
    client = request.client.host if request.client else ""
    return grove.accounts.login(body.username, body.password, body.organization_name, client)


@router.post("/refresh", response_model=AccessToken, responses=errors())
def refresh(grove: GroveDep, token: TokenDep) -> dict:
    """A new access token for the refresh token sent as `Authorization: Bearer <refresh_token>`."""
    return grove.accounts.refresh(token)


@router.post("/register", response_model=UserOut, responses=errors(403, 409, 422))
def register(body: RegisterRequest, grove: GroveDep, caller: CurrentUser) -> dict:
    """Admin creates a user in the caller's organization."""
    return grove.accounts.register(caller, body.name, body.password, body.email, body.roles)
