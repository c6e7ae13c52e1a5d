"""Persistence of what is wanted: users, applications, services, instances, jobs."""

from __future__ import annotations

from grove_api.settings import Settings
from grove_api.store.base import AnyOf, DuplicateError, Store, new_id


def open_store(settings: Settings) -> Store:
    if settings.mongo_url is not None:
        from grove_api.store.mongo import MongoStore  # noqa: PLC0415 - pymongo only when asked for

        return MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
    from grove_api.store.sqlite import SQLiteStore  # noqa: PLC0415

    return SQLiteStore(settings.sqlite_path)


__all__ = ["AnyOf", "DuplicateError", "Store", "new_id", "open_store"]
