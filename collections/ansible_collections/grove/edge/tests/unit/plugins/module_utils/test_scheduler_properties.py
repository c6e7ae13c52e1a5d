"""Properties of the scheduler that must hold for any input (hypothesis)."""

import copy
import json
import random
from collections import defaultdict
from fractions import Fraction

from ansible_collections.grove.edge.plugins.module_utils._scheduler import schedule
from hypothesis import given, settings
from hypothesis import strategies as st

SERVICES = ["app.ns.s0.ns", "app.ns.s1.ns", "app.ns.s2.ns"]
RELEASED = {"DEAD", "COMPLETED", "FAILED", "UNDEPLOYED"}
RESTARTED = {"DEAD", "FAILED"}
STATUSES = ["RUNNING", "CREATING", "NODE_SCHEDULED", *sorted(RELEASED)]
FAILURE_STATUSES = {
    "TargetClusterNotFound",
    "TargetClusterNotActive",
    "TargetClusterNoCapacity",
    "NoActiveClusterWithCapacity",
    "NO_WORKER_CAPACITY",
    "NO_QUALIFIED_WORKER_FOUND",
}
PORTS = ["80/tcp", "80/udp", "443/tcp"]
ARCH = {"x86_64": "amd64", "amd64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
CLUSTERS = ["ca", "cb", "cc"]
WORKERS = ["w0", "w1", "w2", "w3"]

cpus = st.sampled_from([0, 0.25, 0.5, 1, 1.5, 2, 3, 4])


@st.composite
def records(draw):
    record = {
        "service": draw(st.sampled_from([*SERVICES, "other.ns.x.ns"])),
        "instance_number": draw(st.integers(0, 3)),
        "status": draw(st.sampled_from(STATUSES)),
        "resources": {
            "vcpus": draw(cpus),
            "memory": draw(st.integers(0, 3000)),
            "vgpus": draw(st.integers(0, 1)),
            "storage": draw(st.integers(0, 400)),
        },
    }
    if draw(st.booleans()):
        record["host_ports"] = draw(st.lists(st.sampled_from(PORTS), max_size=2, unique=True))
    return record


@st.composite
def worker_facts(draw):
    facts = {
        "hostname": "h",
        "architecture": draw(st.sampled_from(sorted(ARCH))),
        "vcpus": draw(st.integers(0, 8)),
        "memory_mb": draw(st.integers(0, 8192)),
        "gpus": [{"index": index} for index in range(draw(st.integers(0, 2)))],
        "disk_free_mb": draw(st.integers(0, 2000)),
        "runtimes": draw(st.sampled_from([["container"], [], ["unikernel"], ["container", "unikernel"]])),
        "reachable": draw(st.booleans()),
        "instances": draw(st.lists(records(), max_size=4)),
    }
    memory_free = draw(st.none() | st.integers(0, 8192))
    if memory_free is not None:
        facts["memory_free_mb"] = memory_free
    disk_total = draw(st.none() | st.integers(0, 3000))
    if disk_total is not None:
        facts["disk_mb"] = disk_total
    return facts


@st.composite
def infrastructures(draw):
    clusters = {}
    for cluster in draw(st.lists(st.sampled_from(CLUSTERS), min_size=0, max_size=3, unique=True)):
        names = draw(st.lists(st.sampled_from(WORKERS), min_size=0, max_size=4, unique=True))
        clusters[cluster] = {"workers": {name: draw(worker_facts()) for name in names}}
    return clusters


@st.composite
def requests(draw):
    result = []
    for service in draw(st.lists(st.sampled_from(SERVICES), min_size=1, max_size=3, unique=True)):
        constraints = []
        if draw(st.booleans()):
            constraint = {"type": "direct"}
            if draw(st.booleans()):
                constraint["cluster"] = draw(st.sampled_from([*CLUSTERS, "nowhere"]))
            if draw(st.booleans()):
                constraint["node"] = ";".join(
                    draw(st.lists(st.sampled_from(WORKERS), min_size=1, max_size=3))
                )
            constraints.append(constraint)
        requirements = {
            "vcpus": draw(cpus),
            "memory": draw(st.integers(0, 3000)),
            "vgpus": draw(st.integers(0, 1)),
            "storage": draw(st.integers(0, 400)),
            "virtualization": draw(st.sampled_from(["container", "container", "unikernel"])),
        }
        if draw(st.booleans()):
            requirements["architecture"] = draw(st.sampled_from(sorted(ARCH)))
        result.append(
            {
                "service": service,
                "requirements": requirements,
                "instance_numbers": draw(st.lists(st.integers(0, 5), max_size=5, unique=True)),
                "constraints": constraints,
                "host_ports": draw(st.lists(st.sampled_from(PORTS), max_size=2, unique=True)),
            }
        )
    return result


def _holds(record):
    return record["status"] not in RELEASED


def _capacity(facts):
    """What a worker can still give, computed independently of the scheduler's code."""
    held = [record["resources"] for record in facts["instances"] if _holds(record)]
    cpu = Fraction(str(facts["vcpus"])) - sum(Fraction(str(r["vcpus"])) for r in held)
    memory = facts["memory_mb"] - sum(r["memory"] for r in held)
    if "memory_free_mb" in facts:
        memory = min(memory, facts["memory_free_mb"])
    gpu = len(facts["gpus"]) - sum(r["vgpus"] for r in held)
    disk = facts.get("disk_mb", facts["disk_free_mb"]) - sum(r["storage"] for r in held)
    if "disk_mb" in facts:
        disk = min(disk, facts["disk_free_mb"])
    return {"cpu": cpu, "memory": memory, "gpu": gpu, "disk": disk}


def _demand(requirements):
    return {
        "cpu": Fraction(str(requirements["vcpus"])),
        "memory": requirements["memory"],
        "gpu": requirements["vgpus"],
        "disk": requirements["storage"],
    }


def _extra(demand, held):
    """What a running instance adds to its worker when it takes a bigger spec in place."""
    return {dimension: max(amount - held[dimension], 0) for dimension, amount in demand.items()}


def _kept_claim(facts, service, number, default_ports):
    """What the running instance kept on this worker surely holds there: with several copies
    reported on one worker, the least of each resource and the host ports all of them hold."""
    copies = [
        r
        for r in facts["instances"]
        if r["service"] == service and r["instance_number"] == number and _holds(r)
    ]
    held = [_demand(r["resources"]) for r in copies]
    least = {dimension: min(claim[dimension] for claim in held) for dimension in held[0]}
    ports = set.intersection(*(set(r.get("host_ports", default_ports)) for r in copies))
    return least, ports


def _allowed(request, cluster, worker):
    for constraint in request["constraints"]:
        if constraint.get("cluster") and constraint["cluster"] != cluster:
            return False
        if constraint.get("node") and worker not in constraint["node"].split(";"):
            return False
    return True


def check_invariants(services, clusters, result):
    by_service = {request["service"]: request for request in services}
    requested = [(r["service"], n) for r in services for n in r["instance_numbers"]]
    answered = [(p["service"], p["instance_number"]) for p in result["placements"] + result["failures"]]
    assert sorted(answered) == sorted(requested)

    load = defaultdict(lambda: {"cpu": Fraction(0), "memory": 0, "gpu": 0, "disk": 0})
    new_ports = defaultdict(list)
    for placement in result["placements"]:
        request = by_service[placement["service"]]
        facts = clusters[placement["cluster"]]["workers"][placement["worker"]]
        key = (placement["cluster"], placement["worker"])
        assert facts["reachable"] is True
        assert placement["status"] == "NODE_SCHEDULED"
        assert _allowed(request, *key)
        requirements = request["requirements"]
        demand = _demand(requirements)
        ports = list(request["host_ports"])
        if placement["existing"]:
            assert any(
                record["service"] == placement["service"]
                and record["instance_number"] == placement["instance_number"]
                and record["status"] == placement["instance_status"] != "UNDEPLOYED"
                for record in facts["instances"]
            )
            if placement["instance_status"] == "COMPLETED":
                continue
            if placement["instance_status"] not in RESTARTED:
                # Running where it is: it must still fit there with its new spec (issue 7: a
                # bigger spec kept in place overcommitted the worker).
                held, own = _kept_claim(
                    facts, placement["service"], placement["instance_number"], request["host_ports"]
                )
                demand = _extra(demand, held)
                ports = [port for port in ports if port not in own]
        assert requirements["virtualization"] in facts["runtimes"]
        if requirements.get("architecture"):
            assert ARCH[facts["architecture"]] == ARCH[requirements["architecture"]]
        for dimension, amount in demand.items():
            load[key][dimension] += amount
        new_ports[key].extend(ports)

    for key, demand in load.items():
        capacity = _capacity(clusters[key[0]]["workers"][key[1]])
        for dimension, amount in demand.items():
            if amount > 0:
                assert amount <= capacity[dimension], (key, dimension, amount, capacity)

    for key, ports in new_ports.items():
        assert len(ports) == len(set(ports)), (key, ports)
        busy = set()
        for record in clusters[key[0]]["workers"][key[1]]["instances"]:
            if _holds(record):
                busy.update(
                    record.get("host_ports", by_service.get(record["service"], {}).get("host_ports", []))
                )
        assert not busy & set(ports), (key, busy, ports)

    for failure in result["failures"]:
        assert failure["status"] in FAILURE_STATUSES
        assert isinstance(failure["reasons"], dict)


def check_existing_instances_stay(services, clusters, result):
    placed = {(p["service"], p["instance_number"]): p for p in result["placements"]}
    for request in services:
        for number in request["instance_numbers"]:
            homes = [
                (cluster, worker)
                for cluster, spec in clusters.items()
                for worker, facts in spec["workers"].items()
                if facts["reachable"] is True
                and _allowed(request, cluster, worker)
                and any(
                    r["service"] == request["service"] and r["instance_number"] == number and _holds(r)
                    for r in facts["instances"]
                )
            ]
            outcome = placed.get((request["service"], number))
            if not homes or (outcome is not None and outcome["existing"]):
                continue  # check_invariants: an existing placement is where a copy is
            # It could not stay where it runs (its new spec no longer fits): the answer says where it was.
            if outcome is None:
                outcome = next(
                    f
                    for f in result["failures"]
                    if (f["service"], f["instance_number"]) == (request["service"], number)
                )
            assert outcome.get("moved_from"), outcome


def check_removals(services, clusters, result):
    """Removals drop exactly the copies the placement does not keep, and never the last running one."""
    requested = {(r["service"], n) for r in services for n in r["instance_numbers"]}
    services_asked = {r["service"] for r in services}
    kept = {
        (p["service"], p["instance_number"], p["cluster"], p["worker"])
        for p in result["placements"]
        if p["existing"]
    }
    for failure in result["failures"]:
        if "running_on" in failure:
            cluster, worker = failure["running_on"].split("/")
            kept.add((failure["service"], failure["instance_number"], cluster, worker))
    expected = []
    for cluster, spec in clusters.items():
        for worker, facts in spec["workers"].items():
            if facts["reachable"] is not True:
                continue
            for record in facts["instances"]:
                identity = (record["service"], record["instance_number"], cluster, worker)
                if (
                    record["service"] in services_asked
                    and record["status"] != "UNDEPLOYED"
                    and identity not in kept
                ):
                    expected.append(identity)
    removals = [(r["service"], r["instance_number"], r["cluster"], r["worker"]) for r in result["removals"]]
    assert sorted(removals) == sorted(expected)
    for service, number, _cluster, _worker in removals:
        failed_here = any(
            (f["service"], f["instance_number"]) == (service, number) and "running_on" not in f
            for f in result["failures"]
        )
        # A requested instance that found no home loses no running copy.
        assert (
            (service, number) not in requested
            or not failed_here
            or not any(
                _holds(r)
                for spec in clusters.values()
                for facts in spec["workers"].values()
                if facts["reachable"] is True
                for r in facts["instances"]
                if (r["service"], r["instance_number"]) == (service, number)
            )
        )


def _eligible(request, cluster, worker, facts):
    requirements = request["requirements"]
    return (
        facts["reachable"] is True
        and requirements["virtualization"] in facts["runtimes"]
        and (
            not requirements.get("architecture")
            or ARCH[facts["architecture"]] == ARCH[requirements["architecture"]]
        )
        and _allowed(request, cluster, worker)
    )


def check_failures_are_real(services, clusters, result):
    """Replay the decisions in order: whenever an instance failed, no worker could have taken it."""
    by_service = {request["service"]: request for request in services}
    outcomes = {(r["service"], r["instance_number"]): r for r in result["placements"] + result["failures"]}
    remaining = {}
    busy_ports = {}
    for cluster, spec in clusters.items():
        for worker, facts in spec["workers"].items():
            remaining[(cluster, worker)] = _capacity(facts)
            ports = set()
            for record in facts["instances"]:
                if _holds(record):
                    ports.update(
                        record.get("host_ports", by_service.get(record["service"], {}).get("host_ports", []))
                    )
            busy_ports[(cluster, worker)] = ports
    for request in services:
        demand = _demand(request["requirements"])
        for number in sorted(set(request["instance_numbers"])):
            outcome = outcomes[(request["service"], number)]
            if "worker" in outcome:
                key = (outcome["cluster"], outcome["worker"])
                taken = demand
                if outcome["existing"] and outcome["instance_status"] == "COMPLETED":
                    continue
                if outcome["existing"] and outcome["instance_status"] not in RESTARTED:
                    facts = clusters[key[0]]["workers"][key[1]]
                    held, _own = _kept_claim(facts, request["service"], number, request["host_ports"])
                    taken = _extra(demand, held)
                for dimension, amount in taken.items():
                    remaining[key][dimension] -= amount
                busy_ports[key].update(request["host_ports"])
                continue
            for (cluster, worker), left in remaining.items():
                facts = clusters[cluster]["workers"][worker]
                could = (
                    _eligible(request, cluster, worker, facts)
                    and not busy_ports[(cluster, worker)] & set(request["host_ports"])
                    and all(amount <= max(left[dimension], 0) for dimension, amount in demand.items())
                )
                assert not could, (request["service"], number, outcome, cluster, worker, left)


def reordered(clusters, seed):
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    names = list(clusters)
    rng.shuffle(names)
    result = {}
    for name in names:
        workers = list(clusters[name]["workers"].items())
        rng.shuffle(workers)
        result[name] = {"workers": {worker: copy.deepcopy(facts) for worker, facts in workers}}
    return result


@settings(max_examples=400, deadline=None)
@given(services=requests(), clusters=infrastructures(), strategy=st.sampled_from(["spread", "pack"]))
def test_no_worker_is_ever_overcommitted(services, clusters, strategy):
    before = copy.deepcopy((services, clusters))
    result = schedule(services, clusters, strategy)
    assert (services, clusters) == before
    json.dumps(result)
    check_invariants(services, clusters, result)
    check_existing_instances_stay(services, clusters, result)
    check_failures_are_real(services, clusters, result)
    check_removals(services, clusters, result)


@settings(max_examples=150, deadline=None)
@given(
    services=requests(),
    clusters=infrastructures(),
    strategy=st.sampled_from(["spread", "pack"]),
    seed=st.integers(0, 1000),
)
def test_dict_order_never_changes_the_result(services, clusters, strategy, seed):
    assert schedule(services, reordered(clusters, seed), strategy) == schedule(services, clusters, strategy)
