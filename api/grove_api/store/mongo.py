"""MongoDB backend (pymongo): for operators who run MongoDB, e.g. a replica set for HA.
Documents keep Grove's string `_id`; unique keys are unique indexes."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from grove_api.store.base import (
    UNIQUE_KEYS,
    AnyOf,
    DuplicateError,
    Store,
    check_condition,
    check_fields,
    check_kind,
)


def _filter(where: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in check_fields(where).items():
        result[name] = {"$in": list(value)} if isinstance(value, AnyOf) else value
    return result


def _strict(expect: dict[str, Any] | None) -> dict[str, Any]:
    # MongoDB matches 1 == True; SQLite's backend compares types too. Pin booleans with $type.
    result = _filter(expect)
    for name, value in (expect or {}).items():
        if isinstance(value, bool):
            result[name] = {"$eq": value, "$type": "bool"}
    return result


class MongoStore(Store):
    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.db = client[database]
        for kind, keys in UNIQUE_KEYS.items():
            for index, fields in enumerate(keys):
                self.db[kind].create_index(
                    [(name, ASCENDING) for name in fields], unique=True, name=f"{kind}_unique_{index}"
                )

    @classmethod
    def connect(cls, url: str, database: str) -> MongoStore:
        from pymongo import MongoClient  # noqa: PLC0415 - only when this backend is chosen

        return cls(MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10000), database)

    def _duplicate(self, kind: str, error: DuplicateKeyError, doc: dict[str, Any]) -> DuplicateError:
        text = str(error)
        for index, fields in enumerate(UNIQUE_KEYS[kind]):
            if f"{kind}_unique_{index}" in text:
                return DuplicateError(kind, fields)
        # Some servers (and mongomock) do not name the index: find the key that is taken.
        for fields in UNIQUE_KEYS[kind]:
            if all(name in doc for name in fields):
                query = {name: doc[name] for name in fields}
                query["_id"] = {"$ne": doc.get("_id")}
                if self.db[kind].find_one(query) is not None:
                    return DuplicateError(kind, fields)
        return DuplicateError(kind, ("_id",))

    def insert(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        doc = self.prepare_doc(kind, doc)
        try:
            self.db[kind].insert_one(dict(doc))
        except DuplicateKeyError as error:
            raise self._duplicate(kind, error, doc) from None
        return doc

    def get(self, kind: str, doc_id: str) -> dict[str, Any] | None:
        check_kind(kind)
        return self.db[kind].find_one({"_id": doc_id})

    def find(
        self, kind: str, where: dict[str, Any] | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        check_kind(kind)
        cursor = self.db[kind].find(_filter(where)).sort("_id", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(int(limit))
        return list(cursor)

    def count(self, kind: str, where: dict[str, Any] | None = None) -> int:
        check_kind(kind)
        return self.db[kind].count_documents(_filter(where))

    def update(
        self, kind: str, doc_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        check_kind(kind)
        changes = check_fields(changes)
        if "_id" in changes:
            raise ValueError("_id cannot change")
        query = {**_strict(expect), "_id": doc_id}
        try:
            if not changes:
                return self.db[kind].find_one(query)
            return self.db[kind].find_one_and_update(
                query, {"$set": changes}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError as error:
            current = self.db[kind].find_one({"_id": doc_id}) or {}
            raise self._duplicate(kind, error, {**current, **changes}) from None

    def delete(self, kind: str, doc_id: str, expect: dict[str, Any] | None = None) -> bool:
        check_kind(kind)
        return self.db[kind].delete_one({**_strict(expect), "_id": doc_id}).deleted_count == 1

    def delete_where(self, kind: str, where: dict[str, Any]) -> int:
        check_kind(kind)
        return self.db[kind].delete_many(_filter(check_condition(where))).deleted_count

    def increment(self, counter: str, by: int = 1) -> int:
        doc = self.db["counters"].find_one_and_update(
            {"_id": counter}, {"$inc": {"value": by}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["value"])

    def close(self) -> None:
        self.client.close()
