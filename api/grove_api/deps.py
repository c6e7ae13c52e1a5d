"""`Annotated` dependencies of the routers: the process context, the store and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from grove_api.context import Grove
from grove_api.errors import Unauthenticated
from grove_api.services.accounts import Principal
from grove_api.store import Store

bearer = HTTPBearer(
    auto_error=False,
    description="The `token` of POST /api/auth/login (POST /api/auth/refresh takes the `refresh_token`).",
)


# The dependencies are coroutines although nothing in them awaits: FastAPI runs a plain function
# in its thread pool, a hop per dependency and request that costs more than their work
# (docs/benchmarks.md, API).
async def get_grove(request: Request) -> Grove:
    return request.app.state.grove


GroveDep = Annotated[Grove, Depends(get_grove)]


async def get_store(grove: GroveDep) -> Store:
    return grove.store


StoreDep = Annotated[Store, Depends(get_store)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def bearer_token(credentials: BearerDep) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("missing token: send `Authorization: Bearer <token>` (POST /api/auth/login)")
    return credentials.credentials


TokenDep = Annotated[str, Depends(bearer_token)]


async def current_user(grove: GroveDep, token: TokenDep) -> Principal:
    return grove.accounts.principal(token)


CurrentUser = Annotated[Principal, Depends(current_user)]
