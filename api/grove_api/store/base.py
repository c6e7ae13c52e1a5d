"""The store's one small interface: JSON documents by kind, with unique keys, conditional updates
and atomic counters. Two backends implement it (SQLite, MongoDB); tests/api/test_store_contract.py
holds both to the same behaviour. No backend type ever leaves this package."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any

from bson import ObjectId

# Every kind and its unique keys. Two users may not both own clientsrvr.test: its containers'
# names (app.appns.svc.svcns.instance.N) would collide on the workers.
UNIQUE_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "users": (("name",),),
    "organizations": (("name",),),
    "applications": (("application_name", "application_namespace"),),
    "services": (("job_name",), ("RR_ip",)),
    "instances": (("service_id", "instance_number"),),
    "jobs": (),
    "runs": (),
    "job_events": (("run_id", "seq"),),
    "clusters": (),
    "login_failures": (),
    "settings": (),
}
KINDS = tuple(UNIQUE_KEYS)
FIELD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DuplicateError(Exception):
    """A unique key is already taken."""

    def __init__(self, kind: str, fields: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.fields = fields
        super().__init__(f"duplicate {kind} ({', '.join(fields) or 'key'})")


class AnyOf(tuple):
    """`find(kind, {"state": AnyOf(("queued", "running"))})` matches either value."""

    __slots__ = ()


def new_id() -> str:
    """24 hex digits, like MongoDB's ObjectId, which Oakestra's clients expect in `_id.$oid`."""
    return str(ObjectId())


def check_kind(kind: str) -> None:
    if kind not in UNIQUE_KEYS:
        raise ValueError(f"unknown kind {kind!r}")


def check_fields(where: dict[str, Any] | None) -> dict[str, Any]:
    for name in where or {}:
        if not FIELD_PATTERN.fullmatch(name):
            raise ValueError(f"not a field name: {name!r}")
    return dict(where or {})


def check_condition(where: dict[str, Any]) -> dict[str, Any]:
    """A bulk delete's condition: never empty, which would empty the whole kind."""
    if not where:
        raise ValueError("delete_where needs a condition")
    return check_fields(where)


class Store(ABC):
    """Documents are JSON objects with a string `_id`; `insert` assigns one when absent."""

    @abstractmethod
    def insert(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Store a new document; DuplicateError if `_id` or a unique key is taken."""

    @abstractmethod
    def get(self, kind: str, doc_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def find(
        self, kind: str, where: dict[str, Any] | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Documents whose top-level fields equal `where`'s values (AnyOf: one of), oldest first."""

    @abstractmethod
    def count(self, kind: str, where: dict[str, Any] | None = None) -> int: ...

    @abstractmethod
    def update(
        self, kind: str, doc_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Set top-level fields atomically, only if the document exists and matches `expect`.
        Returns the updated document, else None. DuplicateError if a unique key would be taken."""

    @abstractmethod
    def delete(self, kind: str, doc_id: str, expect: dict[str, Any] | None = None) -> bool: ...

    @abstractmethod
    def delete_where(self, kind: str, where: dict[str, Any]) -> int:
        """Delete every document matching `where` (as in `find`; never empty); how many went."""

    @abstractmethod
    def increment(self, counter: str, by: int = 1) -> int:
        """Add to a named counter (starting at 0) atomically and return the new value."""

    @abstractmethod
    def close(self) -> None: ...

    def prepare_doc(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        check_kind(kind)
        doc = dict(doc)
        doc.setdefault("_id", new_id())
        if not isinstance(doc["_id"], str) or not doc["_id"]:
            raise ValueError("_id must be a non-empty string")
        return doc
