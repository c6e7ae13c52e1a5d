"""Reading jobs (Grove's own addition): state, covered instances, the run's event log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from grove_api.errors import NotFound
from grove_api.services.accounts import Principal
from grove_api.store import Store

EVENT_LIMIT = 2000


def _iso(value: float | None) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds") if value else ""


class Jobs:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _visible(self, caller: Principal, job_id: str) -> dict[str, Any]:
        job = self.store.get("jobs", job_id)
        if job is None or (job.get("owner") != caller.name and not caller.is_admin):
            raise NotFound(f"no job with id {job_id!r}")
        return job

    def get(self, caller: Principal, job_id: str) -> dict[str, Any]:
        job = self._visible(caller, job_id)
        services = {sid: self.store.get("services", sid) for sid in job.get("services", [])}
        instances = []
        for ref in job.get("instances", []):
            service = services.get(ref["service_id"]) or {}
            found = self.store.find(
                "instances", {"service_id": ref["service_id"], "instance_number": ref["instance_number"]}
            )
            current = found[0] if found else {}
            instances.append(
                {
                    "service_id": ref["service_id"],
                    "job_name": service.get("job_name", ""),
                    "instance_number": ref["instance_number"],
                    "action": ref.get("action", ""),
                    "status": current.get("status", ""),
                    "status_detail": current.get("status_detail", "removed" if not current else ""),
                }
            )
        run = None
        events: list[dict[str, Any]] = []
        if job.get("run_id"):
            record = self.store.get("runs", job["run_id"])
            if record is not None:
                run = {
                    "run_id": record["_id"],
                    "state": record["state"],
                    "rc": record.get("rc"),
                    "jobs": len(record.get("jobs", [])),
                    "services": [
                        (self.store.get("services", sid) or {}).get("job_name", sid)
                        for sid in record.get("services", [])
                    ],
                    "started_at": _iso(record.get("started_at")),
                    "finished_at": _iso(record.get("finished_at")),
                }
                events = sorted(
                    self.store.find("job_events", {"run_id": record["_id"]}), key=lambda e: e["seq"]
                )
                events = [
                    {
                        k: e.get(k, "")
                        for k in ("seq", "time", "event", "task", "host", "item", "result", "message")
                    }
                    for e in events[-EVENT_LIMIT:]
                ]
        return {
            "job_id": job["_id"],
            "kind": job["kind"],
            "owner": job["owner"],
            "state": job["state"],
            "status_detail": job.get("status_detail", ""),
            "created_at": _iso(job.get("created_at")),
            "started_at": _iso(job.get("started_at")),
            "finished_at": _iso(job.get("finished_at")),
            "attempts": job.get("attempts", 0),
            "instances": instances,
            "run": run,
            "events": events,
        }

    def list(self, caller: Principal) -> list[dict[str, Any]]:
        jobs = self.store.find("jobs") if caller.is_admin else self.store.find("jobs", {"owner": caller.name})
        return [
            {
                "job_id": job["_id"],
                "kind": job["kind"],
                "owner": job["owner"],
                "state": job["state"],
                "status_detail": job.get("status_detail", ""),
                "run_id": job.get("run_id", ""),
                "created_at": _iso(job.get("created_at")),
                "finished_at": _iso(job.get("finished_at")),
            }
            for job in reversed(jobs[-500:])
        ]
