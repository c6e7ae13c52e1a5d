"""/api/clusters: the inventory's groups with their workers' facts (refreshed by playbooks/facts.yml)."""

from __future__ import annotations

from fastapi import APIRouter

from grove_api.deps import CurrentUser, GroveDep
from grove_api.models.oakestra import ClusterOut
from grove_api.routers import errors

router = APIRouter(prefix="/api/clusters", tags=["clusters"])


@router.get("", response_model=list[ClusterOut], responses=errors())
async def all_clusters(grove: GroveDep, caller: CurrentUser) -> list[dict]:
    """Every cluster (an inventory group). Oakestra serves this without a token; Grove wants one."""
    del caller
    return grove.clusters.list()


@router.get("/active", response_model=list[ClusterOut], responses=errors())
async def active_clusters(grove: GroveDep, caller: CurrentUser) -> list[dict]:
    """Clusters with a worker that answered the last facts read, if that read is recent."""
    del caller
    return grove.clusters.list(active_only=True)
