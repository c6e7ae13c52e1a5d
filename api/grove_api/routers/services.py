"""/api/service, /api/services and the instances of a service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from grove_api.deps import CurrentUser, GroveDep
from grove_api.models.oakestra import InstanceRequested, JobStarted, ServiceOut, ServicesCreated
from grove_api.routers import errors, sla_body
from grove_api.services.views import service_view

router = APIRouter(tags=["services"])


def _views(grove: Any, services: list[dict]) -> list[dict]:
    locations = grove.clusters.locations()
    return [service_view(s, grove.catalog.instances_of(s["_id"]), locations) for s in services]


@router.post(
    "/api/service",
    response_model=ServicesCreated,
    responses=errors(403, 404, 409, 413, 422),
    openapi_extra=sla_body("applications[0].applicationID names the caller's application"),
)
def add_services(body: Annotated[Any, Body()], grove: GroveDep, caller: CurrentUser) -> dict:
    """Add the microservices of applications[0] to that existing application (registered, not deployed)."""
    return grove.catalog.add_services(caller, body)


@router.get("/api/services", response_model=list[ServiceOut], responses=errors())
async def all_services(grove: GroveDep, caller: CurrentUser) -> list[dict]:
    """Admin: every service; other users: their own."""
    return _views(grove, grove.catalog.all_services(caller))


@router.get("/api/services/{appid}", response_model=list[ServiceOut], responses=errors(404))
async def application_services(appid: str, grove: GroveDep, caller: CurrentUser) -> list[dict]:
    return _views(grove, grove.catalog.services_of(caller, appid))


@router.get("/api/service/{serviceid}", response_model=ServiceOut, responses=errors(404))
async def get_service(serviceid: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """The service with every descriptor field, its status (RUNNING once all instances run) and
    `instance_list`."""
    return _views(grove, [grove.catalog.service(caller, serviceid)])[0]


@router.put(
    "/api/service/{serviceid}",
    response_model=JobStarted,
    responses=errors(403, 404, 409, 413, 422),
    openapi_extra=sla_body(
        "applications[0].microservices[0] is the service's new spec (or send the microservice object alone)"
    ),
)
def update_service(
    serviceid: str, body: Annotated[Any, Body()], grove: GroveDep, caller: CurrentUser
) -> dict:
    """Update the service (Oakestra answers 501 here); a job makes running instances follow."""
    service, has_instances = grove.catalog.update_service(caller, serviceid, body)
    job_id = grove.deployments.redeploy(caller, service) if has_instances else ""
    return {"message": "service updated", "job_id": job_id}


@router.delete("/api/service/{serviceid}", response_model=JobStarted, responses=errors(404))
def delete_service(serviceid: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """Remove all its instances (a job), then the service."""
    return grove.deployments.delete_service(caller, serviceid)


@router.post(
    "/api/service/{serviceid}/instance", response_model=InstanceRequested, responses=errors(404, 409)
)
def deploy_instance(serviceid: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """One more instance: answers at once with its number; a job schedules and starts it (the
    instance goes REQUESTED -> NODE_SCHEDULED -> CREATING -> RUNNING). Any body is ignored."""
    return grove.deployments.request_instance(caller, serviceid)


@router.delete(
    "/api/service/{serviceid}/instance/{instance_number}",
    response_model=JobStarted,
    responses=errors(404, 422),
)
def undeploy_instance(serviceid: str, instance_number: int, grove: GroveDep, caller: CurrentUser) -> dict:
    """Remove instance `instance_number`: a job removes it from its worker, then its record goes."""
    return grove.deployments.remove_instance(caller, serviceid, instance_number)
