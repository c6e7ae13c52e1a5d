"""Applications and their services: registering descriptors, reading and updating the records.
Deploying and removing is in deployments.py."""

from __future__ import annotations

import copy
import time
from typing import Any

from ansible_collections.grove.edge.plugins.module_utils import _descriptor
from ansible_collections.grove.edge.plugins.module_utils._service_address import hashed_address

from grove_api.errors import Conflict, FieldProblem, Forbidden, Invalid, NotFound
from grove_api.services.accounts import Principal
from grove_api.store import DuplicateError, Store

RR_NETWORK = _descriptor.RR_IP_NETWORK


def validated(body: Any, message: str) -> _descriptor.Descriptor:
    """The collection's own validation (what deploy.yml runs): every problem at once, with its path."""
    problems = _descriptor.validate_descriptor(body)
    if problems:
        raise Invalid(message, [FieldProblem(p.path, p.reason) for p in problems])
    return _descriptor.parse_descriptor(body)


def check_privileged(caller: Principal, descriptor: _descriptor.Descriptor, strip: str = "") -> None:
    """`privileged: true` is root on the worker: Admin only (the collection names the fields)."""
    if caller.is_admin:
        return
    problems = _descriptor.privileged_errors(descriptor)
    if problems:
        raise Forbidden(f"{problems[0].path.removeprefix(strip)}: only Admin may run privileged containers")


def visible(caller: Principal, record: dict[str, Any] | None) -> bool:
    return record is not None and (caller.is_admin or record.get("userId") == caller.name)


class _StoredAddresses:
    """The round-robin addresses the store's services hold, as `hashed_address` asks for them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __contains__(self, address: object) -> bool:
        return bool(self.store.count("services", {"RR_ip": str(address)}))


class Catalog:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- lookups ---------------------------------------------------------------------------------
    def application(self, caller: Principal, app_id: str) -> dict[str, Any]:
        app = self.store.get("applications", app_id)
        if not visible(caller, app):
            raise NotFound(f"no application with id {app_id!r}")
        assert app is not None
        return app

    def service(self, caller: Principal, service_id: str) -> dict[str, Any]:
        service = self.store.get("services", service_id)
        if not visible(caller, service):
            raise NotFound(f"no service with id {service_id!r}")
        assert service is not None
        return service

    def applications_of(self, username: str) -> list[dict[str, Any]]:
        return self.store.find("applications", {"userId": username})

    def applications_of_user_id(self, caller: Principal, user_id: str) -> list[dict[str, Any]]:
        user = self.store.get("users", user_id)
        if user is None or (user["_id"] != caller.id and not caller.is_admin):
            raise NotFound(f"no user with id {user_id!r}")
        return self.applications_of(user["name"])

    def all_applications(self, caller: Principal) -> list[dict[str, Any]]:
        if not caller.is_admin:
            raise Forbidden(
                "only Admin lists everyone's applications: use GET /api/applications/{your user id}"
            )
        return self.store.find("applications")

    def services_of(self, caller: Principal, app_id: str) -> list[dict[str, Any]]:
        app = self.application(caller, app_id)
        return [s for s in self.store.find("services", {"applicationID": app["_id"]})]

    def all_services(self, caller: Principal) -> list[dict[str, Any]]:
        if caller.is_admin:
            return self.store.find("services")
        return self.store.find("services", {"userId": caller.name})

    def instances_of(self, service_id: str) -> list[dict[str, Any]]:
        return sorted(
            self.store.find("instances", {"service_id": service_id}), key=lambda i: i["instance_number"]
        )

    # -- registering ---------------------------------------------------------------------------
    def _name_conflicts(self, caller: Principal, applications: list[dict[str, Any]]) -> None:
        for index, app in enumerate(applications):
            name, namespace = app["application_name"], app["application_namespace"]
            found = self.store.find(
                "applications", {"application_name": name, "application_namespace": namespace}, limit=1
            )
            if found:
                raise Conflict(self._taken(caller, found[0], f"applications[{index}]"))

    @staticmethod
    def _taken(caller: Principal, existing: dict[str, Any], path: str) -> str:
        name = f"{existing['application_name']}.{existing['application_namespace']}"
        if existing["userId"] == caller.name:
            return f"{path}: you already have an application named {name} (id {existing['_id']})"
        return (
            f"{path}: another user already has an application named {name}: instance names "
            f"({name}.<service>.<namespace>.instance.N) must be unique on the workers"
        )

    def _rr_ip_owner(self, rr_ip: str) -> str:
        found = self.store.find("services", {"RR_ip": rr_ip}, limit=1)
        return found[0]["job_name"] if found else "another service"

    def _rr_ip_conflicts(self, applications: list[dict[str, Any]], first_app: int = 0) -> None:
        for a, app in enumerate(applications):
            for m, service in enumerate(app.get("microservices", [])):
                rr_ip = (service.get("addresses") or {}).get("rr_ip") or ""
                if rr_ip and self.store.count("services", {"RR_ip": rr_ip}):
                    fqn = _descriptor.service_fqn(
                        str(app.get("application_name")),
                        str(app.get("application_namespace")),
                        str(service.get("microservice_name")),
                        str(service.get("microservice_namespace")),
                    )
                    raise Conflict(
                        f"applications[{a + first_app}].microservices[{m}].addresses.rr_ip: {rr_ip} "
                        f"for {fqn} is already the address of {self._rr_ip_owner(rr_ip)}"
                    )

    def _free_rr_ip(self, job_name: str) -> str:
        # The address deploy.yml would give the service by itself (a hash of its name, probing
        # past taken ones): the same with or without the API, and two stores (another API, a
        # playbook run) seldom pick the same one for different services.
        return str(hashed_address(job_name, _StoredAddresses(self.store), RR_NETWORK))

    def _insert_service(self, caller: Principal, app: dict[str, Any], raw: dict[str, Any], path: str) -> dict:
        spec = copy.deepcopy(raw)
        requested = (spec.get("addresses") or {}).get("rr_ip") or ""
        job_name = _descriptor.service_fqn(
            app["application_name"],
            app["application_namespace"],
            spec["microservice_name"],
            spec["microservice_namespace"],
        )
        while True:
            rr_ip = requested or self._free_rr_ip(job_name)
            try:
                return self.store.insert(
                    "services",
                    {
                        "applicationID": app["_id"],
                        "userId": app["userId"],
                        "job_name": job_name,
                        "app_name": app["application_name"],
                        "app_ns": app["application_namespace"],
                        "RR_ip": rr_ip,
                        "spec": spec,
                        "deleting": False,
                        "created_at": time.time(),
                        "created_by": caller.name,
                    },
                )
            except DuplicateError as error:
                if error.fields == ("RR_ip",) and not requested:
                    continue  # another request took it meanwhile: take the next
                if error.fields == ("RR_ip",):
                    raise Conflict(
                        f"{path}.addresses.rr_ip: {rr_ip} for {job_name} is already the address of "
                        f"{self._rr_ip_owner(rr_ip)}"
                    ) from None
                raise Conflict(f"{path}: the service {job_name} already exists") from None

    def _add_to_application(self, app_id: str, service_ids: list[str]) -> None:
        while True:
            app = self.store.get("applications", app_id)
            if app is None:
                return
            rev = app.get("rev", 0)
            services = [*app.get("microservices", []), *service_ids]
            if self.store.update(
                "applications", app_id, {"microservices": services, "rev": rev + 1}, expect={"rev": rev}
            ):
                return

    def remove_from_application(self, app_id: str, service_id: str) -> None:
        while True:
            app = self.store.get("applications", app_id)
            if app is None:
                return
            rev = app.get("rev", 0)
            services = [sid for sid in app.get("microservices", []) if sid != service_id]
            if self.store.update(
                "applications", app_id, {"microservices": services, "rev": rev + 1}, expect={"rev": rev}
            ):
                return

    def register(self, caller: Principal, body: Any) -> list[dict[str, Any]]:
        """POST /api/application: the descriptor's applications and services, registered, not deployed."""
        descriptor = validated(body, "the deployment descriptor is invalid")
        applications = body["applications"]
        check_privileged(caller, descriptor)
        self._name_conflicts(caller, applications)
        self._rr_ip_conflicts(applications)
        created: list[dict[str, Any]] = []
        services: list[dict[str, Any]] = []
        try:
            for index, raw in enumerate(applications):
                try:
                    app = self.store.insert(
                        "applications",
                        {
                            "application_name": raw["application_name"],
                            "application_namespace": raw["application_namespace"],
                            "application_desc": raw.get("application_desc", ""),
                            "microservices": [],
                            "userId": caller.name,
                            "sla_version": body["sla_version"],
                            "deleting": False,
                            "rev": 0,
                            "created_at": time.time(),
                        },
                    )
                except DuplicateError:
                    self._name_conflicts(caller, [raw])
                    raise
                created.append(app)
                for number, service in enumerate(raw["microservices"]):
                    path = f"applications[{index}].microservices[{number}]"
                    services.append(self._insert_service(caller, app, service, path))
                self._add_to_application(
                    app["_id"], [s["_id"] for s in services if s["applicationID"] == app["_id"]]
                )
        except BaseException:
            for service in services:
                self.store.delete("services", service["_id"])
            for app in created:
                self.store.delete("applications", app["_id"])
            raise
        return self.applications_of(caller.name)

    def add_services(self, caller: Principal, body: Any) -> dict[str, Any]:
        """POST /api/service: the microservices of applications[0] join that (existing) application."""
        descriptor = validated(body, "the deployment descriptor is invalid")
        applications = body["applications"]
        problems = []
        app_id = applications[0].get("applicationID") or ""
        if not app_id:
            problems.append(
                FieldProblem("applications[0].applicationID", "is required: the application to add to")
            )
        if len(applications) > 1:
            problems.append(
                FieldProblem("applications[1]", "services are added to one application at a time")
            )
        if problems:
            raise Invalid("the deployment descriptor is invalid", problems)
        app = self.application(caller, app_id)
        if app.get("deleting"):
            raise Conflict(f"the application {app_id} is being removed")
        check_privileged(caller, descriptor)
        self._rr_ip_conflicts(applications)
        raw_services = applications[0]["microservices"]
        for number, raw in enumerate(raw_services):
            job_name = _descriptor.service_fqn(
                app["application_name"],
                app["application_namespace"],
                raw["microservice_name"],
                raw["microservice_namespace"],
            )
            if self.store.count("services", {"job_name": job_name}):
                raise Conflict(
                    f"applications[0].microservices[{number}]: the service {job_name} already exists"
                )
        added: list[dict[str, Any]] = []
        try:
            for number, raw in enumerate(raw_services):
                added.append(
                    self._insert_service(caller, app, raw, f"applications[0].microservices[{number}]")
                )
        except BaseException:
            for service in added:
                self.store.delete("services", service["_id"])
            raise
        self._add_to_application(app["_id"], [s["_id"] for s in added])
        return {
            "job_id": added[-1]["_id"] if added else "",
            "deployed_services": [
                {"service_name": s["spec"]["microservice_name"], "status": 200} for s in added
            ],
            "failed_services": [],
        }

    # -- updating ------------------------------------------------------------------------------
    def update_application(self, caller: Principal, app_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        app = self.application(caller, app_id)
        if app.get("deleting"):
            raise Conflict(f"the application {app_id} is being removed")
        name = fields.get("application_name") or app["application_name"]
        namespace = fields.get("application_namespace") or app["application_namespace"]
        desc = (
            fields["application_desc"]
            if fields.get("application_desc") is not None
            else app.get("application_desc", "")
        )
        services = self.store.find("services", {"applicationID": app_id})
        # The same rules as a descriptor: check the would-be descriptor of this application.
        candidate = {
            "sla_version": app.get("sla_version", "v2.0"),
            "customerID": app["userId"],
            "applications": [
                {
                    "application_name": name,
                    "application_namespace": namespace,
                    "application_desc": desc,
                    "microservices": [s["spec"] for s in services],
                }
            ],
        }
        problems = [
            FieldProblem(p.path.removeprefix("applications[0]."), p.reason)
            for p in _descriptor.validate_descriptor(candidate)
        ]
        listed = fields.get("microservices")
        if listed is not None and sorted(listed) != sorted(app.get("microservices", [])):
            problems.append(
                FieldProblem(
                    "microservices",
                    "add services with POST /api/service and remove them with DELETE /api/service/{id}",
                )
            )
        if problems:
            raise Invalid("the application cannot be updated", problems)
        renamed = (name, namespace) != (app["application_name"], app["application_namespace"])
        if renamed and any(self.store.count("instances", {"service_id": s["_id"]}) for s in services):
            raise Conflict(
                "an application with instances keeps its name: their containers are named after it"
            )
        try:
            updated = self.store.update(
                "applications",
                app_id,
                {"application_name": name, "application_namespace": namespace, "application_desc": desc},
            )
        except DuplicateError:
            existing = self.store.find(
                "applications", {"application_name": name, "application_namespace": namespace}
            )
            raise Conflict(self._taken(caller, existing[0], "application_name")) from None
        if renamed:
            for service in services:
                job_name = _descriptor.service_fqn(
                    name,
                    namespace,
                    service["spec"]["microservice_name"],
                    service["spec"]["microservice_namespace"],
                )
                self.store.update(
                    "services", service["_id"], {"job_name": job_name, "app_name": name, "app_ns": namespace}
                )
        assert updated is not None
        return updated

    def update_service(self, caller: Principal, service_id: str, body: Any) -> tuple[dict[str, Any], bool]:
        """PUT /api/service/{id} (Oakestra answers 501): the new spec; True if instances must follow it."""
        service = self.service(caller, service_id)
        if service.get("deleting"):
            raise Conflict(f"the service {service_id} is being removed")
        prefix = ""
        if isinstance(body, dict) and "applications" in body:
            candidate = body
        else:
            prefix = "applications[0].microservices[0]."
            candidate = {
                "sla_version": "v2.0",
                "customerID": service["userId"],
                "applications": [
                    {
                        "application_name": service["app_name"],
                        "application_namespace": service["app_ns"],
                        "microservices": [body],
                    }
                ],
            }
        problems = [
            FieldProblem(p.path.removeprefix(prefix), p.reason)
            for p in _descriptor.validate_descriptor(candidate)
        ]
        if problems:
            raise Invalid("the service cannot be updated", problems)
        spec = copy.deepcopy(candidate["applications"][0]["microservices"][0])
        where = "" if prefix else "applications[0].microservices[0]."
        same = (spec["microservice_name"], spec["microservice_namespace"]) == (
            service["spec"]["microservice_name"],
            service["spec"]["microservice_namespace"],
        )
        if not same:
            raise Invalid(
                "the service cannot be updated",
                [
                    FieldProblem(
                        f"{where}microservice_name",
                        "a service keeps its name: add a new service and delete this one",
                    )
                ],
            )
        check_privileged(caller, _descriptor.parse_descriptor(candidate), prefix)
        requested = (spec.get("addresses") or {}).get("rr_ip") or ""
        rr_ip = requested or service["RR_ip"]
        try:
            self.store.update(
                "services", service_id, {"spec": spec, "RR_ip": rr_ip, "updated_at": time.time()}
            )
        except DuplicateError:
            raise Conflict(
                f"{where}addresses.rr_ip: {rr_ip} is already the address of another service"
            ) from None
        return self.store.get("services", service_id) or service, bool(self.instances_of(service_id))
