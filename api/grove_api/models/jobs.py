"""Deployment jobs: Grove's own addition to Oakestra's API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class JobInstance(BaseModel):
    service_id: str
    job_name: str
    instance_number: int
    action: str = Field(description="deploy or remove")
    status: str = Field(description="the instance's status now ('' once removed)")
    status_detail: str


class JobEvent(BaseModel):
    seq: int
    time: str
    event: str = Field(description="ansible-runner's event name, e.g. runner_on_ok")
    task: str
    host: str
    item: str
    result: str = Field(description="ok, changed, failed, unreachable, skipped or '' for progress events")
    message: str


class JobRun(BaseModel):
    run_id: str
    state: str
    rc: int | None
    jobs: int = Field(description="jobs batched into this playbook run")
    services: list[str]
    started_at: str
    finished_at: str


class JobOut(BaseModel):
    job_id: str
    kind: str
    owner: str
    state: str = Field(description="queued, running, succeeded or failed")
    status_detail: str
    created_at: str
    started_at: str
    finished_at: str
    attempts: int
    instances: list[JobInstance]
    run: JobRun | None
    events: list[JobEvent]


class JobSummary(BaseModel):
    job_id: str
    kind: str
    owner: str
    state: str
    status_detail: str
    run_id: str
    created_at: str
    finished_at: str
