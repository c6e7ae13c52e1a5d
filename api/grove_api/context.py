"""Everything one API process holds: settings, store, auth services and the job runner."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from grove_api.jobs.executor import Executor
from grove_api.jobs.runner import JobRunner
from grove_api.services.accounts import Accounts
from grove_api.services.catalog import Catalog
from grove_api.services.clusters import Clusters
from grove_api.services.deployments import Deployments
from grove_api.services.jobs import Jobs
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
    catalog: Catalog
    deployments: Deployments
    clusters: Clusters
    jobs: Jobs
    runner: JobRunner
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, store: Store | None = None, executor: Executor | None = None) -> Grove:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = store or open_store(settings)
        passwords = Passwords(settings)
        tokens = Tokens(load_signing_key(settings), settings)
        accounts = Accounts(store, settings, passwords, tokens)
        accounts.bootstrap()
        catalog = Catalog(store)
        runner = JobRunner(settings, store, executor)
        deployments = Deployments(store, catalog, runner.queue)
        return cls(
            settings,
            store,
            passwords,
            tokens,
            accounts,
            catalog,
            deployments,
            Clusters(store, settings),
            Jobs(store),
            runner,
        )

    def start(self) -> None:
        if self.settings.run_jobs:
            self.runner.start()

    def close(self) -> None:
        self.runner.stop()
        self.store.close()
