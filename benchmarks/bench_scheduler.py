"""Placement decisions of grove.edge's scheduler at edge-cluster scale, in process.

Synthetic worker facts shaped like grove.edge.node_info's, in 100 clusters; nginx-sized services
(0.1 vcpu, 100 MB). A decision is one instance placed; each size is timed as many decisions in one
call (the per-decision cost, what a burst of requests pays) and as one decision alone (which also
pays for reading every worker's facts). The baseline is the same measurement at 100 workers, so
the ratio is the growth factor. Oakestra reports scheduling "in low milliseconds" at 500 workers.
"""

from __future__ import annotations

from ansible_collections.grove.edge.plugins.module_utils._scheduler import schedule

from benchmarks.harness import Figure, Series, timed

SECTION = "Scheduler (module_utils/_scheduler.py, in process)"
CLUSTERS = 100
GATE_MS = 5.0


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


def _per_decision_ms(workers: int, decisions: int, repeat: int) -> list[float]:
    topology = clusters(CLUSTERS, workers // CLUSTERS)
    requests = services(decisions // 10, 10)
    placed = len(schedule(requests, topology)["placements"])
    assert placed == decisions, f"only {placed} of {decisions} placed at {workers} workers"
    return [sample * 1000 / decisions for sample in timed(lambda: schedule(requests, topology), repeat)]


def _single_ms(workers: int, repeat: int) -> list[float]:
    topology = clusters(CLUSTERS, workers // CLUSTERS)
    requests = services(1, 1)
    return [sample * 1000 for sample in timed(lambda: schedule(requests, topology), repeat)]


def run(quick: bool = False) -> list[Figure]:
    sizes = (100, 200) if quick else (100, 1_000, 10_000)
    decisions = 20 if quick else 1_000
    repeat = 2 if quick else 7
    batch = {
        size: Series(f"{size} workers, per decision", "ms", _per_decision_ms(size, decisions, repeat))
        for size in sizes
    }
    single = {
        size: Series(f"{size} workers, one decision alone", "ms", _single_ms(size, repeat)) for size in sizes
    }
    base = sizes[0]
    figures = []
    for size in sizes:
        figure = Figure(SECTION, batch[size], batch[base] if size != base else None)
        if size == sizes[-1]:
            figure.gate = f"< {GATE_MS:g} ms per decision at {size} workers"
            figure.gate_passed = batch[size].median < GATE_MS
            rate = 1000 / batch[size].median
            figure.notes.append(
                f"{rate:,.0f} decisions per second at {size} workers in {CLUSTERS} clusters "
                f"({decisions} instances per call)."
            )
        figures.append(figure)
    for size in sizes:
        figures.append(Figure(SECTION, single[size], single[base] if size != base else None))
    figures[-1].notes.append(
        "A call placing one instance also validates and indexes every worker's facts: that part grows "
        "with the number of workers, the decisions themselves hardly do."
    )
    return figures
