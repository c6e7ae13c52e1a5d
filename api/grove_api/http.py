"""HTTP plumbing shared by every route: both slash forms, the body size limit, CORS and the JSON
shape of every error answer ({"message": ..., "errors": [{"field", "reason"}]})."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grove_api.errors import Conflict, Forbidden, GroveError, Invalid, NotFound, Throttled, Unauthenticated

log = logging.getLogger("grove_api")

STATUS = {Unauthenticated: 401, Forbidden: 403, NotFound: 404, Conflict: 409, Invalid: 422, Throttled: 429}


def json_answer(payload: Any) -> Response:
    """200 with `payload`, which is already in the route's wire form (FastAPI does not check it)."""
    return Response(orjson.dumps(payload), media_type="application/json")


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """("body", "member", 0, "user_id") -> "member[0].user_id"."""
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def error_response(
    status: int, message: str, errors: list[dict] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class NormalizeSlashes:
    """`/api/application/` and `/api/application` are the same route: the CLIs send one form,
    Oakestra's routes have the other. Routes are declared without the trailing slash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                stripped = path.rstrip("/") or "/"
                scope = dict(scope, path=stripped, raw_path=stripped.encode())
        await self.app(scope, receive, send)


class LimitBody:
    """413 for bodies over the limit, whether announced by Content-Length or streamed in chunks."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.limit
                except ValueError:
                    too_large = False
                if too_large:
                    response = error_response(413, f"the request body is larger than {self.limit} bytes")
                    await response(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def _grove_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, GroveError)
    status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    headers = None
    errors = None
    if isinstance(error, Unauthenticated):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(error, Throttled):
        headers = {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
    elif isinstance(error, Invalid):
        errors = [{"field": p.field, "reason": p.reason} for p in error.problems]
    return error_response(status, error.message, errors, headers)


def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    for problem in problems:
        if problem.get("type") == "json_invalid":
            reason = problem.get("ctx", {}).get("error", "")
            return error_response(400, f"the request body is not valid JSON: {reason}".rstrip(": "))
    errors = []
    for problem in problems:
        field = field_path(problem.get("loc", ()))
        reason = problem.get("msg", "is invalid")
        if problem.get("type") == "missing" and not field:
            reason = "a JSON body is required"
        elif problem.get("type") in ("dict_type", "model_attributes_type") and not field:
            reason = "must be a JSON object"
        errors.append({"field": field, "reason": reason})
    return error_response(422, "the request is invalid", errors)


def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail
    message = detail if isinstance(detail, str) else json.dumps(detail)
    if error.status_code == 404 and message == "Not Found":
        message = "no such endpoint"
    return error_response(error.status_code, message, headers=getattr(error, "headers", None))


def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return error_response(500, "internal error: see the API's log")


def install(app: FastAPI, max_body_bytes: int) -> None:
    app.add_exception_handler(GroveError, _grove_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    # Added last = outermost: CORS headers go on every answer, errors included.
    app.add_middleware(LimitBody, limit=max_body_bytes)
    app.add_middleware(NormalizeSlashes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Retry-After"],
    )
