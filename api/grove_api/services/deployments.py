"""Instances: requesting one, removing one, a service or an application. Each change is recorded
at once and carried out by a job (grove_api.jobs); records of removed instances go only once the
hosts are clean."""

from __future__ import annotations

import time
from typing import Any

from grove_api.errors import Conflict, NotFound
from grove_api.jobs.queue import DEPLOY, REMOVE, JobQueue
from grove_api.services.accounts import Principal
from grove_api.services.catalog import Catalog
from grove_api.services.status import REQUESTED
from grove_api.store import Store

INSTANCE_COUNTER = "instances:{service_id}"


def _job_instance(instance: dict[str, Any], action: str) -> dict[str, Any]:
    return {
        "service_id": instance["service_id"],
        "instance_number": instance["instance_number"],
        "action": action,
    }


class Deployments:
    def __init__(self, store: Store, catalog: Catalog, queue: JobQueue) -> None:
        self.store = store
        self.catalog = catalog
        self.queue = queue

    def request_instance(self, caller: Principal, service_id: str) -> dict[str, Any]:
        """One more instance: its number is taken at once (never reused) and a job deploys it."""
        service = self.catalog.service(caller, service_id)
        if service.get("deleting"):
            raise Conflict(f"the service {service['job_name']} is being removed")
        number = self.store.increment(INSTANCE_COUNTER.format(service_id=service_id)) - 1
        now = time.time()
        instance = self.store.insert(
            "instances",
            {
                "service_id": service_id,
                "instance_number": number,
                "status": REQUESTED,
                "status_detail": "waiting for the deploy job",
                "status_history": [{"status": REQUESTED, "timestamp": now}],
                "deleting": False,
                "created_at": now,
                "last_modified_timestamp": now,
            },
        )
        job = self.queue.enqueue(DEPLOY, caller.name, [service_id], [_job_instance(instance, DEPLOY)])
        self.store.update("instances", instance["_id"], {"job_id": job["_id"]})
        return {"message": "ok", "job_id": job["_id"], "instance_number": number}

    def _mark_for_removal(self, instances: list[dict[str, Any]], detail: str) -> None:
        now = time.time()
        for instance in instances:
            self.store.update(
                "instances",
                instance["_id"],
                {"deleting": True, "status_detail": detail, "last_modified_timestamp": now},
            )

    def remove_instance(self, caller: Principal, service_id: str, number: int) -> dict[str, Any]:
        service = self.catalog.service(caller, service_id)
        found = self.store.find("instances", {"service_id": service_id, "instance_number": number})
        if not found:
            raise NotFound(f"the service {service['job_name']} has no instance {number}")
        job = self.queue.enqueue(REMOVE, caller.name, [service_id], [_job_instance(found[0], REMOVE)])
        self._mark_for_removal(found, f"removal requested (job {job['_id']})")
        return {
            "message": f"instance {number} of {service['job_name']} is being removed",
            "job_id": job["_id"],
        }

    def _remove_services(self, caller: Principal, services: list[dict[str, Any]], kind: str) -> str:
        """Mark the services (and their instances) for removal; a job cleans the hosts. The job id,
        or "" when no instance existed and the records went at once."""
        instances = [i for s in services for i in self.catalog.instances_of(s["_id"])]
        if not instances:
            for service in services:
                self.store.delete("services", service["_id"])
                self.catalog.remove_from_application(service["applicationID"], service["_id"])
            return ""
        job = self.queue.enqueue(
            kind, caller.name, [s["_id"] for s in services], [_job_instance(i, REMOVE) for i in instances]
        )
        for service in services:
            self.store.update("services", service["_id"], {"deleting": True, "job_id": job["_id"]})
        self._mark_for_removal(instances, f"removal requested (job {job['_id']})")
        return job["_id"]

    def delete_service(self, caller: Principal, service_id: str) -> dict[str, Any]:
        service = self.catalog.service(caller, service_id)
        job_id = self._remove_services(caller, [service], "delete_service")
        if not job_id:
            return {"message": f"service {service['job_name']} deleted", "job_id": ""}
        return {"message": f"service {service['job_name']} is being removed", "job_id": job_id}

    def delete_application(self, caller: Principal, app_id: str) -> dict[str, Any]:
        app = self.catalog.application(caller, app_id)
        name = f"{app['application_name']}.{app['application_namespace']}"
        services = self.store.find("services", {"applicationID": app_id})
        self.store.update("applications", app_id, {"deleting": True})
        job_id = self._remove_services(caller, services, "delete_application")
        if not job_id:
            self.store.delete("applications", app_id)
            return {"message": f"application {name} deleted", "job_id": ""}
        return {"message": f"application {name} is being removed", "job_id": job_id}

    def redeploy(self, caller: Principal, service: dict[str, Any]) -> str:
        """After a service's spec changed: a job makes its instances follow."""
        instances = [i for i in self.catalog.instances_of(service["_id"]) if not i.get("deleting")]
        job = self.queue.enqueue(
            DEPLOY,
            caller.name,
            [service["_id"]],
            [_job_instance(i, DEPLOY) for i in instances],
            detail="queued: the service's spec changed",
        )
        return job["_id"]
