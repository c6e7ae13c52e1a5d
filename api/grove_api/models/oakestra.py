"""Applications, services, instances and clusters with Oakestra's field names and types."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from grove_api.models.common import ObjectIdRef


class ApplicationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: ObjectIdRef = Field(alias="_id")
    applicationID: str
    application_name: str
    application_namespace: str
    application_desc: str
    microservices: list[str] = Field(description="the application's service ids")
    userId: str = Field(description="the owner's username")


class ApplicationUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    application_name: str | None = None
    application_namespace: str | None = None
    application_desc: str | None = None
    microservices: list[str] | None = Field(
        None, description="must list the current services (add and remove services with /api/service)"
    )


class MetricPoint(BaseModel):
    value: str
    timestamp: str


class StatusStep(BaseModel):
    status: str
    timestamp: float


class InstanceOut(BaseModel):
    instance_number: int
    status: str
    status_detail: str
    cluster_id: str
    cluster_location: str
    worker_id: str
    host_ip: str
    publicip: str
    host_port: int
    cpu_percent: str
    memory_percent: str
    disk: str
    logs: str
    cpu_history: list[MetricPoint]
    memory_history: list[MetricPoint]
    last_modified_timestamp: float
    address: str = Field("", description="Grove: the instance's own address on its worker")
    instance_ip: str = Field(
        "", description="the instance's address (Grove: on its worker's subnet, 10.18/16)"
    )
    namespace_ip: str = Field(
        "", description="the instance's address in its network namespace (as instance_ip)"
    )
    job_id: str = Field("", description="Grove: the job that last changed this instance (GET /api/jobs/{id})")
    status_history: list[StatusStep] = Field(
        default_factory=list,
        description="Grove: every status the instance went through (REQUESTED, CLUSTER_SCHEDULED, ...)",
    )


class ServiceOut(BaseModel):
    """Every descriptor field verbatim, plus Oakestra's bookkeeping fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: ObjectIdRef = Field(alias="_id")
    microserviceID: str
    applicationID: str
    job_name: str = Field(description="app.appns.svc.svcns")
    app_name: str
    app_ns: str
    service_name: str
    service_ns: str
    microservice_name: str
    microservice_namespace: str
    image: str
    code: str
    virtualization: str
    cmd: list[str]
    memory: int
    vcpus: int | float
    vgpus: int
    vtpus: int
    bandwidth_in: int
    bandwidth_out: int
    storage: int
    port: str
    RR_ip: str
    status: str
    status_detail: str
    instance_list: list[InstanceOut]


class ServicesCreated(BaseModel):
    job_id: str = Field(description="id of the last service added (Oakestra's name for a service is job)")
    deployed_services: list[dict]
    failed_services: list[dict]


class InstanceRequested(BaseModel):
    message: str
    job_id: str = Field(description="Grove: the deployment job (GET /api/jobs/{id})")
    instance_number: int


class JobStarted(BaseModel):
    message: str
    job_id: str = Field(
        "", description="Grove: the removal job (GET /api/jobs/{id}); empty if none was needed"
    )


class WorkerOut(BaseModel):
    name: str
    address: str
    reachable: bool
    vcpus: float
    memory_mb: int
    memory_free_mb: int
    instances: int


class ClusterOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id", description="the cluster's name (an inventory group)")
    cluster_name: str
    cluster_location: str
    active: bool
    active_nodes: int
    aggregated_cpu_percent: float
    memory_in_mb: int
    total_cpu_cores: int
    total_gpu_cores: int
    virtualization: list[str]
    supported_addons: list[str]
    ip: str
    port: int
    last_modified_timestamp: float
    workers: list[WorkerOut] = Field(default_factory=list, description="Grove: each worker's facts")
