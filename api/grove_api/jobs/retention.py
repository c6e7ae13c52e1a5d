"""How long finished jobs are kept: a job, its playbook run and the run's event log (thousands of
documents per run) would otherwise pile up in the store for as long as the API lives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grove_api.jobs.queue import FAILED, RUN_FINISHED, RUN_INTERRUPTED, SUCCEEDED
from grove_api.store import AnyOf, Store


@dataclass
class Pruned:
    jobs: int = 0
    runs: int = 0
    events: int = 0


def _old(record: dict[str, Any], cutoff: float) -> bool:
    finished = record.get("finished_at")
    return isinstance(finished, (int, float)) and finished < cutoff


def _shown_jobs(store: Store) -> set[str]:
    # An instance or a service points at the last job that acted on it (its status_detail
    # refers to it): that job stays while they do, however old.
    return {
        doc["job_id"] for kind in ("instances", "services") for doc in store.find(kind) if doc.get("job_id")
    }


def prune(store: Store, inventory: str, cutoff: float) -> Pruned:
    """Delete this inventory's jobs that finished before `cutoff` and are no instance's or
    service's last job, then the finished runs no job refers to any more, with their events.
    Queued and running jobs and runs are never touched. One pass over each kind, however many
    jobs there are."""
    pruned = Pruned()
    shown = _shown_jobs(store)
    for job in store.find("jobs", {"state": AnyOf((SUCCEEDED, FAILED)), "inventory": inventory}):
        if _old(job, cutoff) and job["_id"] not in shown:
            pruned.jobs += store.delete("jobs", job["_id"], expect={"state": job["state"]})
    referred = {job.get("run_id") for job in store.find("jobs")}
    for run in store.find("runs", {"state": AnyOf((RUN_FINISHED, RUN_INTERRUPTED)), "inventory": inventory}):
        if _old(run, cutoff) and run["_id"] not in referred:
            pruned.events += store.delete_where("job_events", {"run_id": run["_id"]})
            pruned.runs += store.delete("runs", run["_id"], expect={"state": run["state"]})
    return pruned
