"""Cluster facts (playbooks/facts.yml, read-only): the clusters and workers for GET /api/clusters,
and the instances' statuses as the hosts report them."""

from __future__ import annotations

import threading
import time
from typing import Any

from grove_api.jobs.events import NODE_INFO, _failure_text
from grove_api.services import status as st
from grove_api.store import DuplicateError, Store

CLUSTERS_TASK = "Report the clusters"
ADDRESSES_TASK = "Report each worker's address and location"
NODE_SUMMARY = (
    "hostname",
    "architecture",
    "vcpus",
    "memory_mb",
    "memory_free_mb",
    "disk_free_mb",
    "runtimes",
    "gpus",
    "containerd_version",
    "containerd_error",
    "cpu_percent",
    "load_average",
)


class FactsRecorder:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.unreachable: dict[str, str] = {}
        self.clusters: dict[str, list[str]] | None = None
        self.hosts: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> bool:
        with self._lock:
            name = event.get("event", "")
            data = event.get("event_data") or {}
            res = data.get("res") if isinstance(data.get("res"), dict) else {}
            action = data.get("resolved_action") or ""
            host = data.get("host", "")
            if action == NODE_INFO and name == "runner_on_ok":
                self.nodes[host] = res.get("node") or {}
            elif action == NODE_INFO and name in ("runner_on_unreachable", "runner_on_failed"):
                self.unreachable[host] = _failure_text(res)
            elif (
                data.get("task") == CLUSTERS_TASK
                and name == "runner_on_ok"
                and isinstance(res.get("msg"), dict)
            ):
                self.clusters = {
                    str(cluster): sorted((spec or {}).get("workers", {}))
                    for cluster, spec in res["msg"].items()
                }
            elif (
                data.get("task") == ADDRESSES_TASK
                and name == "runner_item_on_ok"
                and isinstance(res.get("msg"), dict)
            ):
                msg = res["msg"]
                self.hosts[str(msg.get("worker"))] = {
                    "address": str(msg.get("address") or ""),
                    "location": str(msg.get("location") or ""),
                }
        return False


def _worker_record(node: dict[str, Any] | None, address: str, reachable: bool, why: str, now: float) -> dict:
    record: dict[str, Any] = {
        "address": address,
        "reachable": reachable,
        "seen_at": now if reachable else None,
    }
    if node is not None:
        record["node"] = {key: node[key] for key in NODE_SUMMARY if key in node}
        record["instances"] = len(
            [i for i in node.get("instances") or [] if str(i.get("status", "")).upper() not in st.RELEASED]
        )
    if why:
        record["unreachable"] = why
    return record


def save_clusters(store: Store, facts: FactsRecorder, now: float | None = None) -> None:
    """Replace the cluster records with what this facts run saw (clusters gone from the inventory go)."""
    now = now or time.time()
    if facts.clusters is None:
        # The play did not get to map the clusters (e.g. no worker answered): update what is known.
        update_workers(store, facts.nodes, facts.unreachable, now)
        return
    for name, workers in facts.clusters.items():
        location = next(
            (
                facts.hosts.get(w, {}).get("location", "")
                for w in workers
                if facts.hosts.get(w, {}).get("location")
            ),
            "",
        )
        record = {
            "cluster_name": name,
            "location": location,
            "refreshed_at": now,
            "workers": {
                worker: _worker_record(
                    facts.nodes.get(worker),
                    facts.hosts.get(worker, {}).get("address", worker),
                    worker in facts.nodes,
                    facts.unreachable.get(worker, ""),
                    now,
                )
                for worker in workers
            },
        }
        if store.update("clusters", name, record) is None:
            try:
                store.insert("clusters", {"_id": name, **record})
            except DuplicateError:
                store.update("clusters", name, record)
    for old in store.find("clusters"):
        if old["_id"] not in facts.clusters:
            store.delete("clusters", old["_id"])


def update_workers(store: Store, nodes: dict[str, dict], unreachable: dict[str, str], now: float) -> None:
    """Fresh node facts of some workers (e.g. read by a deploy run) into the clusters they belong to."""
    for cluster in store.find("clusters"):
        workers = dict(cluster.get("workers", {}))
        changed = False
        for host, known in cluster.get("workers", {}).items():
            if host in nodes or host in unreachable:
                workers[host] = _worker_record(
                    nodes.get(host),
                    known.get("address", host),
                    host in nodes,
                    unreachable.get(host, ""),
                    now,
                )
                changed = True
        if changed:
            store.update("clusters", cluster["_id"], {"workers": workers, "refreshed_at": now})


def worker_addresses(store: Store) -> dict[str, str]:
    return {
        host: spec.get("address", "")
        for cluster in store.find("clusters")
        for host, spec in cluster.get("workers", {}).items()
    }


def refresh_instances(store: Store, facts: FactsRecorder, now: float | None = None) -> None:
    """The hosts are the record of what runs: statuses of deployed instances follow them. Only
    called while no deploy run is going on (the runner lock is held)."""
    now = now or time.time()
    seen: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for host, node in facts.nodes.items():
        for instance in node.get("instances") or []:
            key = (instance.get("service"), instance.get("instance_number"))
            if str(instance.get("status", "")).upper() in st.HEALTHY or key not in seen:
                seen[key] = (host, instance)
    addresses = worker_addresses(store)
    services = {s["_id"]: s for s in store.find("services")}
    for record in store.find("instances", {"deleting": False}):
        service = services.get(record["service_id"])
        if service is None or record.get("status") in st.IN_PROGRESS:
            continue
        key = (service["job_name"], record["instance_number"])
        if key in seen:
            host, instance = seen[key]
            status = st.oakestra_status(str(instance.get("status", "")))
            changes: dict[str, Any] = {
                "worker_id": host,
                "host_ip": addresses.get(host, ""),
                "address": instance.get("address", ""),
                "host_ports": list(instance.get("host_ports") or []),
            }
            if status != record.get("status"):
                changes.update(
                    status=status,
                    status_detail=f"{status} on {host} (read from the host)",
                    last_modified_timestamp=now,
                )
            store.update("instances", record["_id"], changes)
        elif record.get("status") in st.HEALTHY and record.get("worker_id") in facts.nodes:
            store.update(
                "instances",
                record["_id"],
                {
                    "status": st.DEAD,
                    "last_modified_timestamp": now,
                    "status_detail": f"no longer on {record['worker_id']}: request another instance",
                },
            )
        elif record.get("status") in st.HEALTHY and record.get("worker_id") in facts.unreachable:
            store.update(
                "instances",
                record["_id"],
                {
                    "status_detail": f"its worker {record['worker_id']} does not answer: "
                    f"{facts.unreachable[record['worker_id']]}"
                },
            )
