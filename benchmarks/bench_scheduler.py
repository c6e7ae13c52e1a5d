"""Scheduling time of grove.edge's placement algorithm at edge-cluster scale.

Oakestra's paper reports scheduling "in low milliseconds" at 500 simulated workers; this measures
Grove's two-level scheduler (module_utils/_scheduler.py, plain Python) on the same kind of input:
synthetic worker facts shaped like grove.edge.node_info's, nginx-sized services (1 vcpu, 100 MB).

    .venv/bin/python benchmarks/bench_scheduler.py
"""

from __future__ import annotations

import statistics
import sys
import time

from ansible_collections.grove.edge.plugins.module_utils._scheduler import schedule

REPEAT = 5


def clusters(n_clusters: int, workers_per_cluster: int) -> dict:
    result = {}
    for c in range(n_clusters):
        workers = {}
        for w in range(workers_per_cluster):
            workers[f"c{c}w{w}"] = {
                "hostname": f"c{c}w{w}",
                "architecture": "amd64",
                "vcpus": 8 + (w % 4) * 4,
                "memory_mb": 8192 + (w % 3) * 4096,
                "memory_free_mb": 8192,
                "gpus": [],
                "disk_free_mb": 50_000,
                "runtimes": ["container"],
                "reachable": True,
                "instances": [],
            }
        result[f"cluster{c}"] = {"workers": workers}
    return result


def services(n_services: int, instances_each: int) -> list:
    return [
        {
            "service": f"bench.default.svc{i}.default",
            "requirements": {
                "vcpus": 0.1,
                "memory": 100,
                "vgpus": 0,
                "storage": 0,
                "virtualization": "container",
            },
            "instance_numbers": list(range(instances_each)),
            "constraints": [],
        }
        for i in range(n_services)
    ]


def measure(name: str, n_clusters: int, per_cluster: int, n_services: int, instances_each: int, *,
            strategy: str) -> dict:
    topology = clusters(n_clusters, per_cluster)
    requests = services(n_services, instances_each)
    timings = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        result = schedule(requests, topology, strategy)
        timings.append(time.perf_counter() - start)
    placed = len(result["placements"])
    median = statistics.median(timings)
    return {
        "case": name,
        "workers": n_clusters * per_cluster,
        "instances": n_services * instances_each,
        "placed": placed,
        "strategy": strategy,
        "median_s": median,
        "per_instance_ms": median / placed * 1000,
    }


CASES = [
    ("one instance, 500 workers", 1, 500, 1, 1),
    ("1000 instances, 500 workers", 1, 500, 100, 10),
    ("1000 instances, 10 clusters x 50", 10, 50, 100, 10),
    ("5000 instances, 10 clusters x 60", 10, 60, 500, 10),
]


def main() -> int:
    print(f"{'case':36} {'strategy':8} {'workers':>7} {'placed':>7} {'median':>10} {'per instance':>13}")
    for case in CASES:
        for strategy in ("spread", "pack"):
            row = measure(*case, strategy=strategy)
            print(
                f"{row['case']:36} {row['strategy']:8} {row['workers']:7d} {row['placed']:7d} "
                f"{row['median_s'] * 1000:8.1f}ms {row['per_instance_ms']:11.3f}ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
