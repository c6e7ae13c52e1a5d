"""What can go wrong in the services layer, without HTTP: the routers' layer maps these to status
codes (grove_api.http)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str


class GroveError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(GroveError):
    """No credentials, or credentials that do not hold (missing/expired/forged token, bad password)."""


class Forbidden(GroveError):
    """Authenticated, but not allowed to do this."""


class NotFound(GroveError):
    """Absent, or not the caller's (never tell another user's resource from a missing one)."""


class Conflict(GroveError):
    """A name is taken, or the resource is in a state that does not allow this now."""


class Invalid(GroveError):
    """Bad input: every problem at once, each with the field's path."""

    def __init__(self, message: str, problems: list[FieldProblem]) -> None:
        super().__init__(message)
        self.problems = list(problems)


class Throttled(GroveError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
