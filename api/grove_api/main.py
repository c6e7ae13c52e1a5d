"""The FastAPI application: `create_app(settings)`; uvicorn's factory is `app_from_env`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from grove_api import __version__, docs, http
from grove_api.context import Grove
from grove_api.jobs.executor import Executor
from grove_api.models.sla import SlaDescriptor
from grove_api.routers import applications, auth, clusters, jobs, organizations, services, users
from grove_api.settings import Settings
from grove_api.store import Store

ROUTERS = (auth, users, organizations, applications, services, clusters, jobs)

log = logging.getLogger("grove_api")

DESCRIPTION = """\
Grove's root orchestrator: [Oakestra](https://www.oakestra.io/)'s REST API (its CLIs and dashboard
work unchanged) on top of agentless workers driven by Ansible over SSH.

Every success answers HTTP 200; every error is `{"message": ..., "errors": [{"field", "reason"}]}`.
Paths work with and without a trailing slash. Log in with POST /api/auth/login (first start:
Admin / Admin), then **Authorize** with the `token`.

Grove's own additions are marked as such: `GET /api/jobs/{id}` shows a deployment job's progress.
"""


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, executor: Executor | None = None
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        grove = Grove.open(settings, store, executor)
        app.state.grove = grove
        grove.start()
        try:
            yield
        finally:
            grove.close()

    app = FastAPI(
        title="Grove",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        redirect_slashes=False,
        lifespan=lifespan,
    )
    http.install(app, settings.max_body_bytes)
    docs.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    _document_descriptor(app)
    return app


def _document_descriptor(app: FastAPI) -> None:
    """The descriptor endpoints read raw JSON (the collection validates it): put its schema in the
    OpenAPI components so that Swagger UI shows the fields."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            definitions = SlaDescriptor.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(definitions.pop("$defs", {}))
            components["SlaDescriptor"] = definitions
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """uvicorn's factory: settings from GROVE_* environment variables (set by `grove api`)."""
    return create_app(Settings())
