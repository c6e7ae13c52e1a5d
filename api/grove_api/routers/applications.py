"""/api/application, /api/applications."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from grove_api.deps import CurrentUser, GroveDep
from grove_api.http import json_answer
from grove_api.models.common import Message
from grove_api.models.oakestra import ApplicationOut, ApplicationUpdate, JobStarted
from grove_api.routers import errors, sla_body
from grove_api.services.views import application_view

router = APIRouter(tags=["applications"])


@router.post(
    "/api/application",
    response_model=list[ApplicationOut],
    responses=errors(403, 409, 413, 422),
    openapi_extra=sla_body("the applications to register"),
)
def register_applications(body: Annotated[Any, Body()], grove: GroveDep, caller: CurrentUser) -> list[dict]:
    """Register the descriptor's applications and their services (nothing is deployed yet).

    Answers **all of the caller's applications**, as Oakestra does. A bad descriptor answers 422
    with every problem; an application name+namespace that anyone already uses answers 409."""
    return [application_view(app) for app in grove.catalog.register(caller, body)]


# The lists answer with application_view's wire form as it is: validating every item again cost a
# quarter of the server's time on a list of 100 (docs/benchmarks-analysis.md);
# tests/api/test_api_applications.py holds the answers to ApplicationOut.
@router.get("/api/applications", response_model=list[ApplicationOut], responses=errors(403))
async def all_applications(grove: GroveDep, caller: CurrentUser) -> Response:
    """Admin: everyone's applications."""
    return json_answer([application_view(app) for app in grove.catalog.all_applications(caller)])


@router.get("/api/applications/{userid}", response_model=list[ApplicationOut], responses=errors(404))
async def user_applications(userid: str, grove: GroveDep, caller: CurrentUser) -> Response:
    """The applications of the user with this `_id` (the caller's own; Admin: anyone's)."""
    return json_answer(
        [application_view(app) for app in grove.catalog.applications_of_user_id(caller, userid)]
    )


@router.get("/api/application/{appid}", response_model=ApplicationOut, responses=errors(404))
async def get_application(appid: str, grove: GroveDep, caller: CurrentUser) -> dict:
    return application_view(grove.catalog.application(caller, appid))


@router.put("/api/application/{appid}", response_model=Message, responses=errors(404, 409, 422))
def update_application(appid: str, body: ApplicationUpdate, grove: GroveDep, caller: CurrentUser) -> dict:
    """Update the name, namespace (only while no instance exists) or description."""
    grove.catalog.update_application(caller, appid, body.model_dump())
    return {"message": "application updated"}


@router.delete("/api/application/{appid}", response_model=JobStarted, responses=errors(404))
def delete_application(appid: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """Remove the application with its services and instances: a job removes the instances from
    the hosts, then the records go."""
    return grove.deployments.delete_application(caller, appid)
