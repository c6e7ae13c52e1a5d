"""SQLite backend: one file, WAL, one connection per thread; writes take the database lock
(BEGIN IMMEDIATE), so conditional updates and counters are atomic across processes."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from grove_api.store.base import (
    UNIQUE_KEYS,
    AnyOf,
    DuplicateError,
    Store,
    check_condition,
    check_fields,
    check_kind,
)


def _field(name: str) -> str:
    return f"json_extract(doc, '$.{name}')"


def _sql_value(value: Any) -> Any:
    # json_extract gives 1/0 for JSON booleans, and lists/objects as JSON text.
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _decode(text: str) -> dict[str, Any]:
    # orjson reads the stored documents about twice as fast as json (a fifth of a list request's
    # time); json.dumps wrote them, and only json reads a NaN it may have let through.
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _where(where: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for name, value in check_fields(where).items():
        if isinstance(value, AnyOf):
            if not value:
                clauses.append("0")
                continue
            clauses.append(f"{_field(name)} IN ({', '.join('?' * len(value))})")
            params += [_sql_value(item) for item in value]
        elif value is None:
            clauses.append(f"{_field(name)} IS NULL")
        else:
            clauses.append(f"{_field(name)} = ?")
            params.append(_sql_value(value))
    return (" AND ".join(clauses) or "1"), params


def _matches(doc: dict[str, Any], expect: dict[str, Any] | None) -> bool:
    for name, value in check_fields(expect).items():
        actual = doc.get(name)
        if isinstance(value, AnyOf):
            if actual not in value:
                return False
        elif actual != value or (type(actual) is not type(value) and value is not None):
            return False
    return True


class SQLiteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Password hashes and the services' environment live here: readable by root only. SQLite
        # gives its -wal and -shm files the database file's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        with self._write() as db:
            for kind, keys in UNIQUE_KEYS.items():
                db.execute(f"CREATE TABLE IF NOT EXISTS {kind} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
                for index, fields in enumerate(keys):
                    columns = ", ".join(_field(name) for name in fields)
                    db.execute(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS {kind}_unique_{index} ON {kind} ({columns})"
                    )
            db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._guard:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _duplicate(kind: str, error: sqlite3.IntegrityError) -> DuplicateError:
        text = str(error)
        for index, fields in enumerate(UNIQUE_KEYS[kind]):
            if f"{kind}_unique_{index}" in text or all(name in text for name in fields):
                return DuplicateError(kind, fields)
        return DuplicateError(kind, ("_id",))

    def insert(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        doc = self.prepare_doc(kind, doc)
        try:
            with self._write() as db:
                db.execute(f"INSERT INTO {kind} (id, doc) VALUES (?, ?)", (doc["_id"], json.dumps(doc)))
        except sqlite3.IntegrityError as error:
            raise self._duplicate(kind, error) from None
        return doc

    def get(self, kind: str, doc_id: str) -> dict[str, Any] | None:
        check_kind(kind)
        row = self._db().execute(f"SELECT doc FROM {kind} WHERE id = ?", (doc_id,)).fetchone()
        return _decode(row[0]) if row else None

    def find(
        self, kind: str, where: dict[str, Any] | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        check_kind(kind)
        clause, params = _where(where or {})
        sql = f"SELECT doc FROM {kind} WHERE {clause} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_decode(row[0]) for row in self._db().execute(sql, params)]

    def count(self, kind: str, where: dict[str, Any] | None = None) -> int:
        check_kind(kind)
        clause, params = _where(where or {})
        return self._db().execute(f"SELECT COUNT(*) FROM {kind} WHERE {clause}", params).fetchone()[0]

    def update(
        self, kind: str, doc_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        check_kind(kind)
        changes = check_fields(changes)
        if "_id" in changes:
            raise ValueError("_id cannot change")
        try:
            with self._write() as db:
                row = db.execute(f"SELECT doc FROM {kind} WHERE id = ?", (doc_id,)).fetchone()
                if row is None:
                    return None
                doc = _decode(row[0])
                if not _matches(doc, expect):
                    return None
                doc.update(changes)
                db.execute(f"UPDATE {kind} SET doc = ? WHERE id = ?", (json.dumps(doc), doc_id))
        except sqlite3.IntegrityError as error:
            raise self._duplicate(kind, error) from None
        return doc

    def delete(self, kind: str, doc_id: str, expect: dict[str, Any] | None = None) -> bool:
        check_kind(kind)
        with self._write() as db:
            row = db.execute(f"SELECT doc FROM {kind} WHERE id = ?", (doc_id,)).fetchone()
            if row is None or not _matches(_decode(row[0]), expect):
                return False
            db.execute(f"DELETE FROM {kind} WHERE id = ?", (doc_id,))
        return True

    def delete_where(self, kind: str, where: dict[str, Any]) -> int:
        check_kind(kind)
        clause, params = _where(check_condition(where))
        with self._write() as db:
            return db.execute(f"DELETE FROM {kind} WHERE {clause}", params).rowcount

    def increment(self, counter: str, by: int = 1) -> int:
        with self._write() as db:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (counter,)
            )
            db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, counter))
            return db.execute("SELECT value FROM counters WHERE name = ?", (counter,)).fetchone()[0]

    def close(self) -> None:
        with self._guard:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
