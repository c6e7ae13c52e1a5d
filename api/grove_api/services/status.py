"""Oakestra's status names (its clients raise on any other) and a service's status from its instances."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ansible_collections.grove.edge.plugins.module_utils import _scheduler

REQUESTED = "REQUESTED"
CLUSTER_SCHEDULED = "CLUSTER_SCHEDULED"
NODE_SCHEDULED = _scheduler.SCHEDULED
CREATING = "CREATING"
CREATED = "CREATED"
RUNNING = "RUNNING"
FAILED = "FAILED"
DEAD = "DEAD"
COMPLETED = "COMPLETED"
UNDEPLOYED = "UNDEPLOYED"
SCHEDULING_FAILURES = (
    _scheduler.TARGET_CLUSTER_NOT_FOUND,
    _scheduler.TARGET_CLUSTER_NOT_ACTIVE,
    _scheduler.TARGET_CLUSTER_NO_CAPACITY,
    _scheduler.NO_ACTIVE_CLUSTER_WITH_CAPACITY,
    _scheduler.NO_WORKER_CAPACITY,
    _scheduler.NO_QUALIFIED_WORKER_FOUND,
    "NO_NODE_FOUND",
)
IN_PROGRESS = (REQUESTED, CLUSTER_SCHEDULED, NODE_SCHEDULED, CREATING, CREATED)
HEALTHY = (RUNNING, COMPLETED)
# Instances in these states hold no resources on their worker (the scheduler's rule).
RELEASED = tuple(sorted(_scheduler.RELEASED_STATUSES))
STATUSES = (*IN_PROGRESS, RUNNING, FAILED, DEAD, COMPLETED, UNDEPLOYED, *SCHEDULING_FAILURES)


def oakestra_status(name: str) -> str:
    """Whatever a worker reports, `status` only ever carries one of Oakestra's names."""
    if name in STATUSES:
        return name
    name = (name or "").upper()
    if name in STATUSES:
        return name
    return {"PAUSED": RUNNING, "STOPPED": DEAD, "UNKNOWN": FAILED}.get(name, FAILED)


def service_status(instances: list[dict[str, Any]]) -> tuple[str, str]:
    """A service whose instances all run is RUNNING (the seed's ACTIVE: Oakestra has no such status).
    While some are on their way, the earliest step shows; otherwise the first failure."""
    if not instances:
        return UNDEPLOYED, "no instances: POST /api/service/{id}/instance deploys one"
    statuses = [instance.get("status", REQUESTED) for instance in instances]
    counts = Counter(statuses)
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    total = len(instances)
    if all(status in HEALTHY for status in statuses):
        status = RUNNING if RUNNING in counts else COMPLETED
        return status, f"{total} of {total} instances {'running' if status == RUNNING else 'completed'}"
    for step in IN_PROGRESS:
        if step in counts:
            return step, f"{summary}"
    for instance in instances:
        if instance.get("status") not in HEALTHY:
            number = instance.get("instance_number")
            detail = instance.get("status_detail", "")
            return instance["status"], f"{summary}; instance {number}: {detail}".rstrip(": ")
    return FAILED, summary
