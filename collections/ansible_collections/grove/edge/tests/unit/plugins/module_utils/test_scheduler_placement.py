"""Two-level placement (module_utils/_scheduler.py)."""

import copy
import json
import random

import pytest
from ansible_collections.grove.edge.plugins.module_utils._scheduler import (
    SchedulerInputError,
    schedule,
    undeploy,
)
from test_scheduler_properties import reordered

SVC = "app.ns.web.ns"


def node(
    vcpus=4,
    memory=4096,
    *,
    gpus=0,
    disk=10000,
    runtimes=("container",),
    arch="amd64",
    reachable=True,
    **extra,
):
    facts = {
        "hostname": "h",
        "architecture": arch,
        "vcpus": vcpus,
        "memory_mb": memory,
        "memory_free_mb": memory,
        "gpus": [{"index": index, "name": "gpu"} for index in range(gpus)],
        "disk_free_mb": disk,
        "runtimes": list(runtimes),
        "reachable": reachable,
        "instances": [],
    }
    facts.update(extra)
    return facts


def running(service, number, *, vcpus=1, memory=100, status="RUNNING", vgpus=0, storage=0, **extra):
    record = {
        "id": f"{service}.instance.{number}",
        "service": service,
        "instance_number": number,
        "status": status,
        "resources": {"vcpus": vcpus, "memory": memory, "vgpus": vgpus, "storage": storage},
    }
    record.update(extra)
    return record


def request(service=SVC, numbers=(0,), *, vcpus=1, memory=100, vgpus=0, storage=0, constraints=None, **extra):
    data = {
        "service": service,
        "requirements": {
            "vcpus": vcpus,
            "memory": memory,
            "vgpus": vgpus,
            "storage": storage,
            "virtualization": "container",
        },
        "instance_numbers": list(numbers),
        "constraints": constraints or [],
    }
    data.update(extra)
    return data


def one_cluster(**workers):
    return {"c1": {"workers": workers}}


def where(result):
    return [
        (p["service"], p["instance_number"], f"{p['cluster']}/{p['worker']}") for p in result["placements"]
    ]


def workers_of(result):
    return [f"{p['cluster']}/{p['worker']}" for p in result["placements"]]


# --- capacity --------------------------------------------------------------------------------


def test_capacity_exhaustion_places_what_fits_and_reports_the_rest():
    clusters = one_cluster(w1=node(vcpus=2), w2=node(vcpus=2))
    result = schedule([request(numbers=range(5))], clusters)
    assert len(result["placements"]) == 4
    assert sorted(workers_of(result)) == ["c1/w1", "c1/w1", "c1/w2", "c1/w2"]
    [failure] = result["failures"]
    assert failure["instance_number"] == 4
    assert failure["status"] == "NoActiveClusterWithCapacity"
    assert failure["reasons"] == {"c1": "aggregated free resources: needs 1 vcpus, 0 free"}


def test_cluster_has_room_in_sum_but_no_worker_fits():
    clusters = one_cluster(w1=node(vcpus=1), w2=node(vcpus=1))
    result = schedule([request(vcpus=2)], clusters)
    assert result["placements"] == []
    assert result["failures"] == [
        {
            "service": SVC,
            "instance_number": 0,
            "status": "NO_WORKER_CAPACITY",
            "reasons": {"c1/w1": "needs 2 vcpus, 1 free", "c1/w2": "needs 2 vcpus, 1 free"},
        }
    ]


def test_every_resource_shortfall_is_named():
    clusters = one_cluster(
        w1=node(vcpus=1, memory=50, gpus=0, disk=5), w2=node(vcpus=8, memory=8000, gpus=2, disk=9999)
    )
    result = schedule([request(vcpus=2, memory=100, vgpus=1, storage=10)], clusters)
    assert workers_of(result) == ["c1/w2"]
    result = schedule(
        [request(vcpus=2, memory=100, vgpus=1, storage=10, constraints=[{"type": "direct", "node": "w1"}])],
        clusters,
    )
    assert result["failures"][0]["status"] == "NO_WORKER_CAPACITY"
    assert result["failures"][0]["reasons"] == {
        "c1/w1": "needs 2 vcpus, 1 free; needs 100 MB memory, 50 MB free; needs 1 vgpus, 0 free; "
        "needs 10 MB storage, 5 MB free",
        "c1/w2": "not in the direct constraint's node list",
    }


def test_fractional_vcpus_add_up_exactly():
    clusters = one_cluster(w1=node(vcpus=1))
    result = schedule([request(numbers=range(11), vcpus=0.1, memory=0)], clusters)
    assert len(result["placements"]) == 10
    assert result["failures"][0]["reasons"] == {"c1": "aggregated free resources: needs 0.1 vcpus, 0 free"}


def test_measured_free_memory_limits_below_the_reservations():
    # 4096 MB total, but something outside Grove uses most of it.
    clusters = one_cluster(w1=node(memory=4096, memory_free_mb=150), w2=node(memory=1024))
    result = schedule([request(numbers=[0, 1, 2], memory=100, vcpus=0)], clusters, "pack")
    # pack: w1 has the least room (150 MB measured) and takes one; then w2.
    assert workers_of(result) == ["c1/w1", "c1/w2", "c1/w2"]


def test_gpus_are_counted_per_device():
    clusters = one_cluster(w1=node(gpus=1), w2=node(gpus=0))
    result = schedule([request(numbers=[0, 1], vgpus=1)], clusters)
    assert workers_of(result) == ["c1/w1"]
    assert result["failures"][0]["status"] == "NoActiveClusterWithCapacity"


def test_storage_against_free_disk():
    clusters = one_cluster(w1=node(disk=100), w2=node(disk=50))
    result = schedule([request(numbers=[0, 1, 2], storage=50, vcpus=0, memory=0)], clusters)
    assert sorted(workers_of(result)) == ["c1/w1", "c1/w1", "c1/w2"]


def test_disk_total_and_reserved_storage():
    # With disk_mb known, reservations come off the total and the measurement still caps it.
    facts = node(disk=900, disk_mb=1000, instances=[running("x.x.x.x", 0, vcpus=0, memory=0, storage=600)])
    result = schedule([request(numbers=[0, 1], storage=300, vcpus=0, memory=0)], one_cluster(w1=facts))
    assert len(result["placements"]) == 1
    assert result["failures"][0]["reasons"] == {
        "c1": "aggregated free resources: needs 300 MB storage, 100 MB free"
    }


# --- what already runs -----------------------------------------------------------------------


def test_load_of_running_instances_is_counted():
    busy = node(vcpus=4, instances=[running("other.ns.db.ns", 0, vcpus=3, memory=100)])
    clusters = one_cluster(w1=busy, w2=node(vcpus=2))
    result = schedule([request(vcpus=2)], clusters)
    assert workers_of(result) == ["c1/w2"]
    result = schedule([request(numbers=[0, 1], vcpus=2)], clusters)
    assert result["failures"][0]["reasons"] == {"c1": "aggregated free resources: needs 2 vcpus, 1 free"}
    clusters = one_cluster(w1=busy, w2=node(vcpus=1))
    result = schedule([request(vcpus=2)], clusters)
    assert result["failures"][0]["status"] == "NO_WORKER_CAPACITY"
    assert result["failures"][0]["reasons"] == {
        "c1/w1": "needs 2 vcpus, 1 free",
        "c1/w2": "needs 2 vcpus, 1 free",
    }


@pytest.mark.parametrize("status", ["DEAD", "COMPLETED", "FAILED", "UNDEPLOYED"])
def test_finished_instances_hold_no_resources(status):
    facts = node(vcpus=2, instances=[running("other.ns.db.ns", 0, vcpus=2, status=status)])
    result = schedule([request(vcpus=2)], one_cluster(w1=facts))
    assert workers_of(result) == ["c1/w1"]


@pytest.mark.parametrize("status", ["REQUESTED", "NODE_SCHEDULED", "CREATING", "RUNNING", "running", "WEIRD"])
def test_other_statuses_hold_resources(status):
    facts = node(vcpus=2, instances=[running("other.ns.db.ns", 0, vcpus=2, status=status)])
    result = schedule([request(vcpus=2)], one_cluster(w1=facts))
    assert result["failures"][0]["status"] == "NoActiveClusterWithCapacity"


def test_existing_instances_stay_where_they_are():
    w2 = node(vcpus=4, instances=[running(SVC, 0, vcpus=1)])
    clusters = one_cluster(w1=node(vcpus=8), w2=w2)
    result = schedule([request(numbers=[0, 1], vcpus=1)], clusters)
    assert result["placements"][0] == {
        "service": SVC,
        "instance_number": 0,
        "cluster": "c1",
        "worker": "w2",
        "existing": True,
        "status": "NODE_SCHEDULED",
        "instance_status": "RUNNING",
    }
    assert result["placements"][1]["existing"] is False
    assert result["placements"][1]["worker"] == "w1"


def test_repeated_deploy_is_idempotent():
    clusters = one_cluster(w1=node(vcpus=3), w2=node(vcpus=3), w3=node(vcpus=3))
    services = [request(numbers=[0, 1, 2, 3], vcpus=1), request("app.ns.db.ns", [0], vcpus=2)]
    first = schedule(services, clusters)
    assert first["failures"] == []
    # Record the first placements as running, then schedule the same request again.
    for placement in first["placements"]:
        resources = {"vcpus": 2 if placement["service"] == "app.ns.db.ns" else 1, "memory": 100}
        clusters["c1"]["workers"][placement["worker"]]["instances"].append(
            {**running(placement["service"], placement["instance_number"]), "resources": resources}
        )
    second = schedule(services, clusters)
    assert second["failures"] == []
    assert where(second) == where(first)
    assert all(p["existing"] for p in second["placements"])


def test_an_existing_instance_is_found_by_its_id_alone():
    record = {"id": f"{SVC}.instance.3", "status": "RUNNING", "resources": {"vcpus": 1}}
    clusters = one_cluster(w1=node(), w2=node(instances=[record]))
    result = schedule([request(numbers=[3])], clusters)
    assert result["placements"][0]["worker"] == "w2"
    assert result["placements"][0]["existing"] is True


def test_instance_on_an_unreachable_worker_is_moved():
    gone = node(reachable=False, instances=[running(SVC, 0)])
    result = schedule([request()], one_cluster(w1=gone, w2=node()))
    [placement] = result["placements"]
    assert (placement["worker"], placement["existing"], placement["moved_from"]) == ("w2", False, "c1/w1")


def test_instance_outside_its_new_constraint_is_moved():
    clusters = {
        "c1": {"workers": {"w1": node(instances=[running(SVC, 0)])}},
        "c2": {"workers": {"w9": node()}},
    }
    result = schedule([request(constraints=[{"type": "direct", "cluster": "c2"}])], clusters)
    [placement] = result["placements"]
    assert (placement["cluster"], placement["worker"], placement["moved_from"]) == ("c2", "w9", "c1/w1")


def test_dead_instance_restarts_in_place_when_it_fits_and_reserves_again():
    w1 = node(vcpus=2, instances=[running(SVC, 0, vcpus=2, status="DEAD")])
    result = schedule(
        [request(numbers=[0], vcpus=2), request("other.ns.x.ns", [0], vcpus=2)], one_cluster(w1=w1)
    )
    assert result["placements"] == [
        {
            "service": SVC,
            "instance_number": 0,
            "cluster": "c1",
            "worker": "w1",
            "existing": True,
            "status": "NODE_SCHEDULED",
            "instance_status": "DEAD",
        }
    ]
    # The restarted instance takes the worker's 2 vcpus again, so nothing else fits.
    assert result["failures"][0]["service"] == "other.ns.x.ns"


def test_dead_instance_without_room_any_more_is_moved():
    w1 = node(vcpus=2, instances=[running(SVC, 0, status="FAILED"), running("other.ns.x.ns", 0, vcpus=2)])
    result = schedule([request(numbers=[0], vcpus=1)], one_cluster(w1=w1, w2=node(vcpus=1)))
    [placement] = result["placements"]
    assert (placement["worker"], placement["existing"], placement["moved_from"]) == ("w2", False, "c1/w1")


def test_completed_one_shot_stays_completed():
    w1 = node(vcpus=1, instances=[running(SVC, 0, status="COMPLETED"), running("other.ns.x.ns", 0, vcpus=1)])
    result = schedule([request()], one_cluster(w1=w1))
    assert result["placements"][0]["existing"] is True
    assert result["placements"][0]["instance_status"] == "COMPLETED"


def test_a_running_instance_that_grows_is_rechecked_where_it_runs():
    # Issue 7: a 2-vcpu worker runs A at 1 vcpu; the descriptor asks A at 2 plus B at 1. Keeping A
    # in place without a check put 3 vcpus on the worker.
    w1 = node(vcpus=2, instances=[running(SVC, 0, vcpus=1)])
    result = schedule([request(vcpus=2), request("app.ns.b.ns", [0], vcpus=1)], one_cluster(w1=w1))
    assert where(result) == [(SVC, 0, "c1/w1")]
    assert result["placements"][0]["existing"] is True
    assert result["failures"][0]["service"] == "app.ns.b.ns"
    assert result["failures"][0]["reasons"] == {"c1": "aggregated free resources: needs 1 vcpus, 0 free"}


def test_a_running_instance_whose_new_spec_no_longer_fits_moves_and_its_old_copy_goes():
    w1 = node(vcpus=2, instances=[running(SVC, 0, vcpus=1), running("other.ns.x.ns", 0, vcpus=1)])
    result = schedule([request(vcpus=2)], one_cluster(w1=w1, w2=node(vcpus=2)))
    [placement] = result["placements"]
    assert (placement["worker"], placement["existing"], placement["moved_from"]) == ("w2", False, "c1/w1")
    assert result["removals"] == [{"service": SVC, "instance_number": 0, "cluster": "c1", "worker": "w1"}]


def test_a_running_instance_that_cannot_grow_anywhere_keeps_running_where_it_is():
    w1 = node(vcpus=2, instances=[running(SVC, 0, vcpus=1), running("other.ns.x.ns", 0, vcpus=1)])
    result = schedule([request(vcpus=2)], one_cluster(w1=w1))
    [failure] = result["failures"]
    assert failure["status"] == "NoActiveClusterWithCapacity"
    assert (failure["moved_from"], failure["running_on"]) == ("c1/w1", "c1/w1")
    assert result["removals"] == []


def test_a_running_instance_that_adds_a_host_port_in_use_moves():
    w1 = node(
        instances=[running(SVC, 0, host_ports=[]), running("other.ns.x.ns", 0, host_ports=["6080/tcp"])]
    )
    result = schedule([request(host_ports=["6080/tcp"])], one_cluster(w1=w1, w2=node()))
    [placement] = result["placements"]
    assert (placement["worker"], placement["moved_from"]) == ("w2", "c1/w1")
    # Its own ports never stand in its way.
    w1 = node(instances=[running(SVC, 0, host_ports=["6080/tcp"])])
    result = schedule([request(host_ports=["6080/tcp", "53/udp"])], one_cluster(w1=w1))
    assert result["placements"][0]["existing"] is True


def test_a_smaller_spec_frees_nothing_for_the_same_run():
    # The instance is recreated smaller only after the other placements of the run started.
    w1 = node(vcpus=2, instances=[running(SVC, 0, vcpus=2)])
    result = schedule([request(vcpus=1), request("app.ns.b.ns", [0], vcpus=1)], one_cluster(w1=w1))
    assert [p["service"] for p in result["placements"]] == [SVC]
    assert result["failures"][0]["service"] == "app.ns.b.ns"


def test_copies_of_one_instance_on_one_worker_grow_from_the_least_any_of_them_holds():
    # Found by the property test: a worker with no free disk reported the same instance three times
    # (containers with other names but the same labels), one of them claiming 1 MB of storage. The
    # instance was kept as if the 1 MB copy were the one recreated; the recreated one may claim 0.
    copies = [
        running(SVC, 0, vcpus=0, memory=0, storage=0, id="a"),
        running(SVC, 0, vcpus=0, memory=0, storage=0, id="b"),
        running(SVC, 0, vcpus=0, memory=0, storage=1, id="c"),
    ]
    w0 = node(vcpus=0, memory=0, disk=0, memory_free_mb=0, instances=copies)
    result = schedule([request(vcpus=0, memory=0, storage=1)], one_cluster(w0=w0))
    [failure] = result["failures"]
    assert failure["moved_from"] == failure["running_on"] == "c1/w0"
    assert failure["reasons"] == {"c1": "aggregated free resources: needs 1 MB storage, 0 MB free"}
    assert result["placements"] == [] and result["removals"] == []
    # Room for the growth: it stays, and grows by what the smallest copy lacks.
    w0 = node(vcpus=0, memory=0, disk=2, memory_free_mb=0, instances=copies)
    result = schedule(
        [request(vcpus=0, memory=0, storage=1), request("app.ns.b.ns", vcpus=0, memory=0, storage=1)],
        one_cluster(w0=w0),
    )
    assert where(result) == [(SVC, 0, "c1/w0")]
    assert result["placements"][0]["existing"] is True
    assert result["failures"][0]["service"] == "app.ns.b.ns"


def test_copies_of_one_instance_on_one_worker_keep_only_the_host_ports_all_of_them_hold():
    copies = [running(SVC, 0, host_ports=["80/tcp"], id="a"), running(SVC, 0, host_ports=[], id="b")]
    result = schedule([request(host_ports=["80/tcp"])], one_cluster(w0=node(instances=copies), w1=node()))
    [placement] = result["placements"]
    assert (placement["worker"], placement["moved_from"]) == ("w1", "c1/w0")


def test_removals_list_surplus_numbers_and_duplicates_on_workers_that_answer():
    w1 = node(instances=[running(SVC, 0), running(SVC, 1), running("other.ns.x.ns", 5)])
    w2 = node(instances=[running(SVC, 0)])
    gone = node(reachable=False, instances=[running(SVC, 2)])
    result = schedule([request(numbers=[0])], one_cluster(w1=w1, w2=w2, w3=gone))
    assert where(result) == [(SVC, 0, "c1/w1")]
    assert result["removals"] == [
        {"service": SVC, "instance_number": 1, "cluster": "c1", "worker": "w1"},
        {"service": SVC, "instance_number": 0, "cluster": "c1", "worker": "w2"},
    ]


def test_undeployed_instance_is_placed_anew():
    w1 = node(vcpus=1, instances=[running(SVC, 0, status="UNDEPLOYED")])
    result = schedule([request()], one_cluster(w1=w1, w2=node(vcpus=8)))
    assert result["placements"][0]["existing"] is False
    assert "moved_from" not in result["placements"][0]


# --- constraints -----------------------------------------------------------------------------


def test_direct_cluster():
    clusters = {"big": {"workers": {"w1": node(vcpus=64)}}, "small": {"workers": {"w1": node(vcpus=2)}}}
    result = schedule(
        [request(numbers=[0, 1, 2], constraints=[{"type": "direct", "cluster": "small"}])], clusters
    )
    assert workers_of(result) == ["small/w1", "small/w1"]
    assert result["failures"] == [
        {
            "service": SVC,
            "instance_number": 2,
            "status": "TargetClusterNoCapacity",
            "reasons": {"small": "aggregated free resources: needs 1 vcpus, 0 free"},
        }
    ]


def test_direct_cluster_that_does_not_exist():
    result = schedule([request(constraints=[{"type": "direct", "cluster": "mars"}])], one_cluster(w1=node()))
    assert result["failures"] == [
        {
            "service": SVC,
            "instance_number": 0,
            "status": "TargetClusterNotFound",
            "reasons": {"mars": "no such cluster"},
        }
    ]


def test_direct_cluster_without_reachable_workers():
    clusters = {"c1": {"workers": {"w1": node(reachable=False)}}, "c2": {"workers": {"w1": node()}}}
    result = schedule([request(constraints=[{"type": "direct", "cluster": "c1"}])], clusters)
    assert result["failures"][0]["status"] == "TargetClusterNotActive"
    assert result["failures"][0]["reasons"] == {"c1": "no reachable worker"}


def test_direct_node_list():
    clusters = one_cluster(w1=node(vcpus=16), w2=node(vcpus=2), w3=node(vcpus=2))
    constraint = [{"type": "direct", "cluster": "c1", "node": "w2;w3"}]
    result = schedule([request(numbers=range(5), constraints=constraint)], clusters)
    assert sorted(workers_of(result)) == ["c1/w2", "c1/w2", "c1/w3", "c1/w3"]
    assert result["failures"][0]["status"] == "NO_WORKER_CAPACITY"
    assert result["failures"][0]["reasons"] == {
        "c1/w1": "not in the direct constraint's node list",
        "c1/w2": "needs 1 vcpus, 0 free",
        "c1/w3": "needs 1 vcpus, 0 free",
    }


def test_node_list_without_cluster_searches_every_cluster():
    clusters = {"a": {"workers": {"w1": node(vcpus=16)}}, "b": {"workers": {"edge7": node(vcpus=1)}}}
    result = schedule([request(constraints=[{"type": "direct", "node": "edge7"}])], clusters)
    assert workers_of(result) == ["b/edge7"]


def test_node_list_naming_no_worker():
    result = schedule([request(constraints=[{"type": "direct", "node": "ghost"}])], one_cluster(w1=node()))
    assert result["failures"][0]["status"] == "NO_QUALIFIED_WORKER_FOUND"
    assert result["failures"][0]["reasons"] == {"c1/w1": "not in the direct constraint's node list"}


# --- kinds of workers ------------------------------------------------------------------------


def test_no_qualified_worker_reasons():
    clusters = one_cluster(
        down=node(reachable=False),
        wasm=node(runtimes=("wasm",)),
        bare=node(runtimes=()),
        arm=node(arch="arm64"),
    )
    result = schedule([request(requirements={"vcpus": 1, "architecture": "x86_64"})], clusters)
    assert result["failures"] == [
        {
            "service": SVC,
            "instance_number": 0,
            "status": "NO_QUALIFIED_WORKER_FOUND",
            "reasons": {
                "c1/arm": "architecture arm64, needs amd64",
                "c1/bare": "no 'container' runtime (has: none)",
                "c1/down": "unreachable",
                "c1/wasm": "no 'container' runtime (has: wasm)",
            },
        }
    ]


def test_architecture_aliases_and_default():
    clusters = one_cluster(pi=node(arch="aarch64", vcpus=1), pc=node(arch="amd64", vcpus=8))
    arm = schedule([request(requirements={"architecture": "arm64"})], clusters)
    assert workers_of(arm) == ["c1/pi"]
    anywhere = schedule([request(requirements={})], clusters)
    assert workers_of(anywhere) == ["c1/pc"]


def test_a_cluster_without_suitable_workers_falls_back_to_the_next():
    # Oakestra would give up after choosing `big` on aggregate resources alone.
    clusters = {
        "big": {"workers": {"w1": node(vcpus=32, runtimes=("unikernel",))}},
        "small": {"workers": {"w1": node(vcpus=2)}},
    }
    result = schedule([request()], clusters)
    assert workers_of(result) == ["small/w1"]


def test_unreachable_workers_do_not_count_in_the_aggregate():
    clusters = {"c1": {"workers": {"w1": node(vcpus=64, reachable=False), "w2": node(vcpus=1)}}}
    result = schedule([request(vcpus=2)], clusters)
    assert result["failures"][0]["reasons"] == {"c1": "aggregated free resources: needs 2 vcpus, 1 free"}


# --- host ports ------------------------------------------------------------------------------


def test_instances_sharing_a_host_port_never_share_a_worker():
    clusters = one_cluster(w1=node(vcpus=8), w2=node(vcpus=8))
    result = schedule([request(numbers=[0, 1, 2], host_ports=["6080/tcp"])], clusters)
    assert workers_of(result) == ["c1/w1", "c1/w2"]
    assert result["failures"][0]["status"] == "NO_WORKER_CAPACITY"
    assert result["failures"][0]["reasons"] == {
        "c1/w1": "host port 6080/tcp already in use",
        "c1/w2": "host port 6080/tcp already in use",
    }


def test_same_port_number_with_another_protocol_is_fine():
    result = schedule(
        [
            request("a.a.dns.a", [0], host_ports=["53/udp"]),
            request("a.a.web.a", [0], host_ports=["53/tcp", 80]),
        ],
        one_cluster(w1=node()),
    )
    assert result["failures"] == []


def test_ports_of_running_instances_block_the_worker():
    reported = node(instances=[running("other.ns.x.ns", 0, host_ports=["6080/tcp"])])
    result = schedule([request(host_ports=["6080/tcp"])], one_cluster(w1=reported, w2=node(vcpus=1)))
    assert workers_of(result) == ["c1/w2"]


def test_running_replicas_hold_their_service_ports_even_if_facts_omit_them():
    clusters = one_cluster(w1=node(vcpus=8, instances=[running(SVC, 0)]), w2=node(vcpus=1))
    result = schedule([request(numbers=[0, 1], host_ports=["6080/tcp"])], clusters)
    assert where(result) == [(SVC, 0, "c1/w1"), (SVC, 1, "c1/w2")]


# --- strategies ------------------------------------------------------------------------------


def test_spread_alternates_between_equal_workers():
    clusters = one_cluster(w1=node(vcpus=4), w2=node(vcpus=4))
    result = schedule([request(numbers=range(4))], clusters, "spread")
    assert workers_of(result) == ["c1/w1", "c1/w2", "c1/w1", "c1/w2"]


def test_spread_prefers_most_free_resources():
    clusters = one_cluster(small=node(vcpus=2), large=node(vcpus=6))
    result = schedule([request(numbers=range(6))], clusters, "spread")
    # After four, both have 2 vcpus free: memory decides (small has more), then vcpus again.
    assert workers_of(result) == ["c1/large"] * 4 + ["c1/small", "c1/large"]


def test_spread_spreads_replicas_that_need_no_resources():
    clusters = one_cluster(w1=node(), w2=node(), w3=node())
    result = schedule([request(numbers=range(3), vcpus=0, memory=0)], clusters, "spread")
    assert sorted(workers_of(result)) == ["c1/w1", "c1/w2", "c1/w3"]


def test_pack_fills_the_tightest_fit_first():
    clusters = one_cluster(small=node(vcpus=2), large=node(vcpus=6), exact=node(vcpus=3))
    result = schedule(
        [request("a.a.big.a", [0], vcpus=3), request(numbers=range(3), vcpus=1)], clusters, "pack"
    )
    assert where(result) == [
        ("a.a.big.a", 0, "c1/exact"),
        (SVC, 0, "c1/small"),
        (SVC, 1, "c1/small"),
        (SVC, 2, "c1/large"),
    ]


def test_strategies_choose_clusters_too():
    clusters = {"a": {"workers": {"w": node(vcpus=2)}}, "b": {"workers": {"w": node(vcpus=8)}}}
    assert workers_of(schedule([request()], clusters, "spread")) == ["b/w"]
    assert workers_of(schedule([request()], clusters, "pack")) == ["a/w"]


def test_ties_are_broken_by_name():
    clusters = {
        "zeta": {"workers": {"b": node(), "a": node()}},
        "alpha": {"workers": {"y": node(), "x": node()}},
    }
    assert workers_of(schedule([request()], clusters, "spread")) == ["alpha/x"]
    assert workers_of(schedule([request()], clusters, "pack")) == ["alpha/x"]


# --- determinism -----------------------------------------------------------------------------


def _busy_infrastructure():
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    clusters = {}
    for c in range(4):
        workers = {}
        for w in range(12):
            facts = node(
                vcpus=rng.choice([1, 2, 4, 8]),
                memory=rng.choice([512, 1024, 4096]),
                gpus=rng.choice([0, 0, 1]),
            )
            facts["instances"] = [
                running(f"x.x.s{i}.x", w, vcpus=1, memory=100) for i in range(rng.randint(0, 2))
            ]
            workers[f"w{w:02d}"] = facts
        clusters[f"c{c}"] = {"workers": workers}
    services = [
        request(
            f"app.ns.s{i}.ns",
            range(rng.randint(1, 8)),
            vcpus=rng.choice([0.5, 1, 2]),
            memory=rng.choice([64, 256]),
        )
        for i in range(40)
    ]
    return services, clusters


@pytest.mark.parametrize("strategy", ["spread", "pack"])
def test_same_input_same_output_whatever_the_dict_order(strategy):
    services, clusters = _busy_infrastructure()
    first = schedule(copy.deepcopy(services), copy.deepcopy(clusters), strategy)
    assert first["placements"] and first["failures"]
    assert schedule(copy.deepcopy(services), copy.deepcopy(clusters), strategy) == first
    for seed in range(5):
        shuffled = reordered(clusters, seed)
        assert list(shuffled) != list(clusters) or seed  # some orders differ from the original
        again = schedule(copy.deepcopy(services), shuffled, strategy)
        assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_input_is_not_modified():
    services, clusters = _busy_infrastructure()
    before = (copy.deepcopy(services), copy.deepcopy(clusters))
    schedule(services, clusters)
    assert (services, clusters) == before


def test_result_is_plain_json():
    services, clusters = _busy_infrastructure()
    result = schedule(services, clusters)
    assert json.loads(json.dumps(result)) == result


# --- input checking --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("services", "clusters", "strategy", "fragment"),
    [
        ([request()], one_cluster(w1=node()), "random", "strategy"),
        ({"service": SVC}, one_cluster(w1=node()), "spread", "services: must be a list"),
        ([request()], [], "spread", "clusters"),
        ([request()], {"c1": {"nodes": {}}}, "spread", "clusters.c1: needs a `workers` dict"),
        ([request()], one_cluster(w1="up"), "spread", "clusters.c1.workers.w1"),
        ([request()], one_cluster(w1=node(vcpus="4")), "spread", "clusters.c1.workers.w1.vcpus"),
        ([request()], one_cluster(w1=node(vcpus=True)), "spread", "clusters.c1.workers.w1.vcpus"),
        ([request()], one_cluster(w1=node(instances=[{"status": "RUNNING"}])), "spread", "instances[0]"),
        ([request(vcpus="1")], one_cluster(w1=node()), "spread", "services[0].requirements.vcpus"),
        ([request(vcpus=-1)], one_cluster(w1=node()), "spread", "must not be negative"),
        ([request(numbers=[-1])], one_cluster(w1=node()), "spread", "instance_numbers"),
        ([request(service="")], one_cluster(w1=node()), "spread", "services[0].service"),
        ([request(), request()], one_cluster(w1=node()), "spread", "requested twice"),
        ([request(constraints=[{"type": "latency"}])], one_cluster(w1=node()), "spread", "only `direct`"),
        ([request(host_ports=["http"])], one_cluster(w1=node()), "spread", "host ports"),
    ],
)
def test_malformed_input_is_refused_with_its_path(services, clusters, strategy, fragment):
    with pytest.raises(SchedulerInputError, match=None) as raised:
        schedule(services, clusters, strategy)
    assert fragment in str(raised.value)


def test_missing_facts_mean_nothing_is_available():
    result = schedule([request(vcpus=0, memory=0)], one_cluster(w1={}))
    assert result["failures"][0]["status"] == "NO_QUALIFIED_WORKER_FOUND"
    assert result["failures"][0]["reasons"] == {"c1/w1": "no 'container' runtime (has: none)"}


def test_no_clusters_at_all():
    result = schedule([request()], {})
    assert result["failures"] == [
        {"service": SVC, "instance_number": 0, "status": "NoActiveClusterWithCapacity", "reasons": {}}
    ]


def test_a_service_without_instances_places_nothing():
    assert schedule([request(numbers=[])], one_cluster(w1=node())) == {
        "placements": [],
        "failures": [],
        "removals": [],
    }


def test_a_resource_not_needed_does_not_matter_on_an_overcommitted_worker():
    # Reservations exceed the worker's memory (facts changed under it), but this service needs none.
    facts = node(vcpus=4, memory=100, instances=[running("other.ns.x.ns", 0, vcpus=0, memory=500)])
    result = schedule(
        [request(vcpus=1, memory=0), request("a.a.b.a", [0], vcpus=1, memory=1)], one_cluster(w1=facts)
    )
    assert workers_of(result) == ["c1/w1"]
    assert result["failures"][0]["reasons"] == {
        "c1": "aggregated free resources: needs 1 MB memory, 0 MB free"
    }


def test_names_that_yaml_read_as_numbers():
    clusters = {1: {"workers": {2: node(instances=[running(SVC, 0)]), 10: node()}}}
    result = schedule([request(numbers=[0, 1])], clusters)
    assert where(result) == [(SVC, 0, "1/2"), (SVC, 1, "1/10")]
    assert result["placements"][0]["existing"] is True


def test_undeploy_lists_every_copy_and_the_ones_it_cannot_reach():
    w1 = node(instances=[running(SVC, 0), running(SVC, 1), running("other.ns.x.ns", 0)])
    gone = node(reachable=False, instances=[running(SVC, 2)])
    clusters = one_cluster(w1=w1, w9=gone)
    result = undeploy([SVC], clusters)
    assert result["removals"] == [
        {"service": SVC, "instance_number": 0, "cluster": "c1", "worker": "w1"},
        {"service": SVC, "instance_number": 1, "cluster": "c1", "worker": "w1"},
    ]
    assert result["stranded"] == [{"service": SVC, "instance_number": 2, "cluster": "c1", "worker": "w9"}]
    only = undeploy([SVC], clusters, instance=1)
    assert [r["instance_number"] for r in only["removals"]] == [1]
    assert only["stranded"] == []
    with pytest.raises(SchedulerInputError, match="instance"):
        undeploy([SVC], clusters, instance=-1)
