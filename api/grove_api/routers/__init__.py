"""One router per resource: paths, status codes and Oakestra's field names."""

from __future__ import annotations

from typing import Any

from grove_api.models.common import ErrorBody

_REASONS = {
    400: "malformed request (e.g. the body is not JSON)",
    401: "missing, expired or forged token",
    403: "not allowed for this user",
    404: "unknown id, or not the caller's",
    409: "the name is taken, or the resource is busy",
    413: "the request body is too large",
    422: "invalid input: every problem with its field",
    429: "too many failed logins: wait Retry-After seconds",
}


def sla_body(description: str) -> dict[str, Any]:
    """The request body is an SLA v2 descriptor, validated by the collection's own rules."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SlaDescriptor"}}},
        }
    }


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers of a route."""
    # 422 always: FastAPI would otherwise document its own validation shape, which Grove does not answer.
    return {code: {"model": ErrorBody, "description": _REASONS[code]} for code in sorted({401, 422, *codes})}
