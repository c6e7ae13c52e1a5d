"""What a run must achieve, read from the store when it starts: descriptor.json (every covered
service exactly as stored) and instances.json (the instance numbers that must run afterwards)."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.grove.edge.plugins.module_utils import _descriptor

from grove_api.services.accounts import ADMIN
from grove_api.store import Store

DESCRIPTOR_FILE = "descriptor.json"
INSTANCES_FILE = "instances.json"


@dataclass
class Plan:
    descriptor: dict[str, Any]
    instances: dict[str, list[int] | None]
    services: dict[str, dict[str, Any]]  # fqn -> service record
    records: dict[tuple[str, int], dict[str, Any]]  # (fqn, number) -> instance record
    allow_privileged: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.services

    def service_id(self, fqn: str) -> str | None:
        service = self.services.get(fqn)
        return service["_id"] if service else None

    def write(self, directory: Path) -> tuple[Path, Path]:
        """The two files deploy.yml reads, readable by root only (the descriptor holds secrets)."""
        paths = []
        for name, data in ((DESCRIPTOR_FILE, self.descriptor), (INSTANCES_FILE, self.instances)):
            path = directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1)
            paths.append(path)
        return paths[0], paths[1]


def _is_admin(store: Store, username: str) -> bool:
    found = store.find("users", {"name": username}, limit=1)
    return bool(found) and ADMIN in found[0].get("roles", [])


def build_plan(store: Store, service_ids: list[str]) -> Plan:
    applications: dict[str, dict[str, Any]] = {}
    services: dict[str, dict[str, Any]] = {}
    instances: dict[str, list[int] | None] = {}
    records: dict[tuple[str, int], dict[str, Any]] = {}
    allow_privileged = False
    for service_id in sorted(set(service_ids)):
        service = store.get("services", service_id)
        if service is None:
            continue  # deleted meanwhile: nothing of it is wanted any more
        app = store.get("applications", service["applicationID"])
        if app is None:
            continue
        spec = copy.deepcopy(service["spec"])
        # The stored spec is the user's, verbatim, with the service's RR_ip: the one it asked for or
        # the one the API allocated, so that the workers route the address the API shows.
        spec["microserviceID"] = service["_id"]
        spec["addresses"] = {**(spec.get("addresses") or {}), "rr_ip": service["RR_ip"]}
        entry = applications.setdefault(
            app["_id"],
            {
                "applicationID": app["_id"],
                "application_name": app["application_name"],
                "application_namespace": app["application_namespace"],
                "application_desc": app.get("application_desc", ""),
                "microservices": [],
            },
        )
        entry["microservices"].append(spec)
        fqn = service["job_name"]
        services[fqn] = service
        wanted = []
        for instance in store.find("instances", {"service_id": service_id}):
            records[(fqn, instance["instance_number"])] = instance
            if not service.get("deleting") and not instance.get("deleting"):
                wanted.append(instance["instance_number"])
        # null: the service goes altogether, its address with it (deploy.yml's instances file).
        instances[fqn] = None if service.get("deleting") else sorted(wanted)
        if spec.get("privileged") is True and wanted and _is_admin(store, service["userId"]):
            allow_privileged = True
    descriptor = {"sla_version": "v2.0", "customerID": "grove", "applications": list(applications.values())}
    problems = [str(p) for p in _descriptor.validate_descriptor(descriptor)] if services else []
    return Plan(descriptor, instances, services, records, allow_privileged, problems)
