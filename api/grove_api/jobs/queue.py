"""Queueing a job: a record in the store that the runner picks up (with every other queued job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from grove_api.store import Store

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
DEPLOY = "deploy"
REMOVE = "remove"
# States of a playbook run (a record of kind "runs", covering the jobs it took).
RUN_RUNNING = "running"
RUN_FINISHED = "finished"
RUN_INTERRUPTED = "interrupted"


class JobQueue:
    def __init__(self, store: Store, inventory: str, wake: Callable[[], None] | None = None) -> None:
        self.store = store
        self.inventory = inventory
        self.wake = wake or (lambda: None)

    def enqueue(
        self, kind: str, owner: str, services: list[str], instances: list[dict[str, Any]], detail: str = ""
    ) -> dict[str, Any]:
        job = self.store.insert(
            "jobs",
            {
                "kind": kind,
                "owner": owner,
                "state": QUEUED,
                "inventory": self.inventory,
                "services": sorted(set(services)),
                "instances": instances,
                "created_at": time.time(),
                "started_at": None,
                "finished_at": None,
                "attempts": 0,
                "run_id": "",
                "status_detail": detail or "queued: waiting for the job runner",
            },
        )
        self.wake()
        return job
