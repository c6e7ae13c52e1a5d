"""The SLA v2 deployment descriptor, for the OpenAPI document only.

Requests are validated by the collection's module_utils/_descriptor.py (the rules deploy.yml
uses), never by these models: they describe the shape for Swagger UI and clients."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SlaAddresses(BaseModel):
    rr_ip: str = Field("", description="fixed round-robin address in 10.30.0.0/16; allocated when empty")


class SlaConstraint(BaseModel):
    type: str = Field(description="only 'direct' is supported", examples=["direct"])
    cluster: str = Field("", description="the cluster (inventory group) to use")
    node: str = Field("", description="eligible workers: 'node1;node2'")


class SlaMicroservice(BaseModel):
    model_config = ConfigDict(extra="allow")

    microserviceID: str = Field("", description="empty for new services")
    microservice_name: str = Field(description="1-30 letters or digits", examples=["nginx"])
    microservice_namespace: str = Field(description="1-30 letters or digits", examples=["test"])
    virtualization: str = Field(description="'container'", examples=["container"])
    code: str = Field(description="image reference", examples=["docker.io/library/nginx:latest"])
    cmd: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    environment: list[str] = Field(default_factory=list, description="VAR=value; never logged")
    memory: int = Field(0, description="MB")
    vcpus: float = 0
    vgpus: int = 0
    vtpus: int = 0
    bandwidth_in: int = 0
    bandwidth_out: int = 0
    storage: int = 0
    port: str = Field("", description="hostport:containerport[/tcp|udp];...", examples=["6080:80/tcp"])
    addresses: SlaAddresses | None = None
    constraints: list[SlaConstraint] = Field(default_factory=list)
    added_files: list[str] = Field(default_factory=list)
    state: str = ""
    one_shot: bool = False
    privileged: bool = Field(False, description="Admin only")


class SlaApplication(BaseModel):
    model_config = ConfigDict(extra="allow")

    applicationID: str = Field(
        "", description="empty for POST /api/application; the target for POST /api/service"
    )
    application_name: str = Field(examples=["clientsrvr"])
    application_namespace: str = Field(examples=["test"])
    application_desc: str = ""
    microservices: list[SlaMicroservice]


class SlaDescriptor(BaseModel):
    """Oakestra's SLA v2 deployment descriptor."""

    model_config = ConfigDict(extra="allow")

    sla_version: str = Field(examples=["v2.0"], description="'v2.0' or 'v0.2'")
    customerID: str = Field(examples=["Admin"], description="ignored: the caller owns what is created")
    applications: list[SlaApplication]
