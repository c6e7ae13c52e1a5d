"""Everything one API process holds: settings, store, auth services and the job runner."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from grove_api.services.accounts import Accounts
from grove_api.services.security import Passwords, Tokens, load_signing_key
from grove_api.settings import Settings
from grove_api.store import Store, open_store

log = logging.getLogger("grove_api")


@dataclass
class Grove:
    settings: Settings
    store: Store
    passwords: Passwords
    tokens: Tokens
    accounts: Accounts
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, store: Store | None = None) -> Grove:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = store or open_store(settings)
        passwords = Passwords(settings)
        tokens = Tokens(load_signing_key(settings), settings)
        accounts = Accounts(store, settings, passwords, tokens)
        accounts.bootstrap()
        return cls(settings, store, passwords, tokens, accounts)

    def start(self) -> None:
        pass

    def close(self) -> None:
        self.store.close()
