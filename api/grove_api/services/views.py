"""Records -> Oakestra's objects (field names and types its clients read)."""

from __future__ import annotations

from typing import Any

from grove_api.services.status import service_status

# Descriptor fields every service object carries, with Oakestra's defaults when the SLA left them out.
SERVICE_DEFAULTS: dict[str, Any] = {
    "virtualization": "container",
    "cmd": [],
    "memory": 0,
    "vcpus": 0,
    "vgpus": 0,
    "vtpus": 0,
    "bandwidth_in": 0,
    "bandwidth_out": 0,
    "storage": 0,
    "port": "",
    "code": "",
}


def application_view(app: dict[str, Any]) -> dict[str, Any]:
    """Already in its wire form (ApplicationOut), so the lists can skip validating it again."""
    return {
        "_id": {"$oid": app["_id"]},
        "applicationID": app["_id"],
        "application_name": app["application_name"],
        "application_namespace": app["application_namespace"],
        "application_desc": app.get("application_desc") or "",
        "microservices": list(app.get("microservices", [])),
        "userId": app["userId"],
    }


def instance_view(instance: dict[str, Any], locations: dict[str, str] | None = None) -> dict[str, Any]:
    host_ports = instance.get("host_ports") or []
    first = str(host_ports[0]).partition("/")[0] if host_ports else ""
    cluster = instance.get("cluster_id") or ""
    return {
        "instance_number": instance["instance_number"],
        "status": instance.get("status", "REQUESTED"),
        "status_detail": instance.get("status_detail", ""),
        "cluster_id": cluster,
        "cluster_location": (locations or {}).get(cluster, ""),
        "worker_id": instance.get("worker_id") or "",
        "host_ip": instance.get("host_ip") or "",
        "publicip": instance.get("host_ip") or "",
        "host_port": int(first) if first.isdigit() else 0,
        "cpu_percent": str(instance.get("cpu_percent", "0")),
        "memory_percent": str(instance.get("memory_percent", "0")),
        "disk": str(instance.get("disk", "0")),
        "logs": instance.get("logs") or "",
        "cpu_history": list(instance.get("cpu_history") or [])[-100:],
        "memory_history": list(instance.get("memory_history") or [])[-100:],
        "last_modified_timestamp": float(instance.get("last_modified_timestamp") or 0.0),
        "address": instance.get("address") or "",
        # Oakestra's names for it: Grove gives an instance one address, on its worker's subnet,
        # which every other instance reaches over the overlay.
        "instance_ip": instance.get("address") or "",
        "namespace_ip": instance.get("address") or "",
        "job_id": instance.get("job_id") or "",
        "status_history": list(instance.get("status_history") or []),
    }


def service_view(
    service: dict[str, Any], instances: list[dict[str, Any]], locations: dict[str, str] | None = None
) -> dict[str, Any]:
    instances = sorted(instances, key=lambda item: item["instance_number"])
    status, detail = service_status(instances)
    if service.get("deleting"):
        detail = f"being removed (job {service.get('job_id', '')}); {detail}"
    spec = service["spec"]
    return {
        **SERVICE_DEFAULTS,
        **spec,
        "_id": service["_id"],
        "microserviceID": service["_id"],
        "applicationID": service["applicationID"],
        "job_name": service["job_name"],
        "app_name": service["app_name"],
        "app_ns": service["app_ns"],
        "service_name": spec["microservice_name"],
        "service_ns": spec["microservice_namespace"],
        "image": spec.get("code", ""),
        "RR_ip": service["RR_ip"],
        "status": status,
        "status_detail": detail,
        "instance_list": [instance_view(instance, locations) for instance in instances],
    }
