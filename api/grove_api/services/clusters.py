"""Clusters (inventory groups) and their workers, as the last facts run saw them."""

from __future__ import annotations

import time
from typing import Any

from grove_api.settings import Settings
from grove_api.store import Store


def cluster_view(cluster: dict[str, Any], stale_after: float, now: float) -> dict[str, Any]:
    workers = cluster.get("workers", {})
    reachable = {name: w for name, w in workers.items() if w.get("reachable")}
    fresh = now - cluster.get("refreshed_at", 0) <= stale_after

    def total(key: str) -> float:
        return sum(float((w.get("node") or {}).get(key) or 0) for w in reachable.values())

    cpu = [float((w.get("node") or {}).get("cpu_percent") or 0) for w in reachable.values()]
    return {
        "_id": cluster["_id"],
        "cluster_name": cluster.get("cluster_name", cluster["_id"]),
        "cluster_location": cluster.get("location", ""),
        "active": bool(reachable) and fresh,
        "active_nodes": len(reachable),
        "aggregated_cpu_percent": round(sum(cpu) / len(cpu), 2) if cpu else 0.0,
        "memory_in_mb": int(total("memory_free_mb")),
        "total_cpu_cores": int(total("vcpus")),
        "total_gpu_cores": sum(len((w.get("node") or {}).get("gpus") or []) for w in reachable.values()),
        "virtualization": sorted(
            {r for w in reachable.values() for r in (w.get("node") or {}).get("runtimes", [])}
        ),
        "supported_addons": [],
        "ip": "",
        "port": 0,
        "last_modified_timestamp": float(cluster.get("refreshed_at", 0.0)),
        "workers": [
            {
                "name": name,
                "address": w.get("address", ""),
                "reachable": bool(w.get("reachable")),
                "vcpus": float((w.get("node") or {}).get("vcpus") or 0),
                "memory_mb": int((w.get("node") or {}).get("memory_mb") or 0),
                "memory_free_mb": int((w.get("node") or {}).get("memory_free_mb") or 0),
                "instances": int(w.get("instances") or 0),
            }
            for name, w in sorted(workers.items())
        ],
    }


class Clusters:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def list(self, active_only: bool = False) -> list[dict[str, Any]]:
        now = time.time()
        views = [
            cluster_view(c, self.settings.cluster_stale_seconds, now) for c in self.store.find("clusters")
        ]
        return [v for v in views if v["active"] or not active_only]

    def locations(self) -> dict[str, str]:
        return {c["_id"]: c.get("location", "") for c in self.store.find("clusters")}
