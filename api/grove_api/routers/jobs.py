"""/api/jobs: Grove's own addition to Oakestra's API."""

from __future__ import annotations

from fastapi import APIRouter

from grove_api.deps import CurrentUser, GroveDep
from grove_api.models.jobs import JobOut, JobSummary
from grove_api.routers import errors

router = APIRouter(prefix="/api/jobs", tags=["jobs (Grove's addition)"])


@router.get("", response_model=list[JobSummary], responses=errors())
async def list_jobs(grove: GroveDep, caller: CurrentUser) -> list[dict]:
    """**Grove's addition, not in Oakestra's API.** The caller's jobs (Admin: all), newest first."""
    return grove.jobs.list(caller)


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
async def get_job(job_id: str, grove: GroveDep, caller: CurrentUser) -> dict:
    """**Grove's addition, not in Oakestra's API.** A deployment job: its state, the instances it
    covers with their statuses now, the playbook run it was batched into and that run's event log
    (task names and per-host results), so long work shows progress."""
    return grove.jobs.get(caller, job_id)
