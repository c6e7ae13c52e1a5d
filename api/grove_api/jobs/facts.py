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
)
HISTORY_POINTS = 100
MIB = 1024 * 1024


def rate_percent(now: float | None, before: float | None, seconds: float, per_second: float) -> float | None:
    """How busy a cumulative counter was between two samples, in percent of `per_second`."""
    if now is None or before is None or seconds <= 0 or now < before:
        return None
    return round((now - before) / (seconds * per_second) * 100, 2)


def host_cpu_percent(times: dict | None, before: dict | None) -> float | None:
    if not times or not before or times.get("total") is None or before.get("total") is None:
        return None
    total = times["total"] - before["total"]
    busy = times["busy"] - before["busy"]
    return round(busy / total * 100, 2) if total > 0 else None


def _point(value: float, at: float) -> dict[str, str]:
    return {"value": f"{value:g}", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))}


def usage_changes(record: dict[str, Any], instance: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Oakestra's cpu_percent, memory_percent, logs and their histories, from two samples of the
    counters grove.edge.node_info reads (the previous one is kept on the record)."""
    usage = instance.get("usage") or {}
    at = float(node.get("sampled_at") or time.time())
    previous = record.get("usage_sample") or {}
    changes: dict[str, Any] = {
        "usage_sample": {"cpu_ns": usage.get("cpu_ns"), "at": at},
        "logs": str(instance.get("log_tail") or ""),
    }
    cpu = rate_percent(usage.get("cpu_ns"), previous.get("cpu_ns"), at - float(previous.get("at") or at), 1e9)
    if cpu is not None:
        changes["cpu_percent"] = f"{cpu:g}"
        changes["cpu_history"] = [*(record.get("cpu_history") or []), _point(cpu, at)][-HISTORY_POINTS:]
    memory = usage.get("memory_bytes")
    limit = usage.get("memory_limit_bytes") or (node.get("memory_mb") or 0) * MIB
    if memory is not None and limit:
        percent = round(memory / limit * 100, 2)
        changes["memory_percent"] = f"{percent:g}"
        changes["memory_history"] = [*(record.get("memory_history") or []), _point(percent, at)][
            -HISTORY_POINTS:
        ]
    return changes


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


def _worker_record(
    node: dict[str, Any] | None,
    address: str,
    reachable: bool,
    why: str,
    now: float,
    *,
    before: dict | None = None,
) -> dict:
    record: dict[str, Any] = {
        "address": address,
        "reachable": reachable,
        "seen_at": now if reachable else None,
    }
    if node is not None:
        record["node"] = {key: node[key] for key in NODE_SUMMARY if key in node}
        record["node"]["cpu_times"] = node.get("cpu_times")
        previous = ((before or {}).get("node") or {}).get("cpu_times")
        record["node"]["cpu_percent"] = host_cpu_percent(node.get("cpu_times"), previous) or 0.0
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
    known = {cluster["_id"]: cluster for cluster in store.find("clusters")}
    for name, workers in facts.clusters.items():
        before = (known.get(name) or {}).get("workers") or {}
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
                    before=before.get(worker),
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
                    before=known,
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
                **usage_changes(record, instance, facts.nodes.get(host) or {}),
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
