"""Grove's network across two clusters of the test bed: a client in one cluster reaches a service
in the other over VXLAN and over plain routes; the workers' subnets are planned and kept by the hosts.
"""

from __future__ import annotations

import json
import re

import pytest
from test_network import (
    CLIENT,
    CLIENT_ID,
    HOSTS_DIR,
    NGINX,
    RR_IP,
    SUBNET_PLAN,
    WORKERS_YML,
    network_traces,
    run_instance,
    sync,
    wait_for_page,
)
from testbed_support import Testbed

pytestmark = pytest.mark.testbed


@pytest.fixture
def two_clusters(testbed_two_clusters, tmp_path):
    bed = testbed_two_clusters
    run_instance(bed, "c1w1", CLIENT)
    nginx = run_instance(bed, "c2w2", NGINX)
    yield bed, nginx
    for host, service in (("c1w1", CLIENT), ("c2w2", NGINX)):
        bed.remove_instance(host, service)
    for host in bed.hosts:
        bed.module(host, "grove.edge.service_address", {"state": "absent"})
        bed.host_shell(host, ["rm", "-rf", HOSTS_DIR])


def test_a_client_in_one_cluster_reaches_a_service_in_the_other_over_vxlan_and_routes(two_clusters, tmp_path):
    bed, nginx = two_clusters
    sync(bed, tmp_path)
    wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{nginx['address']}/")
    wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{RR_IP}/")
    try:
        bed.playbook(WORKERS_YML, "-e", "grove_network_mode=routes")
        assert "grove-vx" not in network_traces(bed, "c1w1")
        routes = bed.host_shell("c1w1", ["ip", "route", "show", "proto", "118"]).stdout
        assert re.search(r"10\.18\.4\.0/24 via 10\.99\.2\.12 dev eth0", routes), routes
        wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{RR_IP}/")
    finally:
        bed.playbook(WORKERS_YML)
    wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{RR_IP}/")


def recorded(bed: Testbed, path: str) -> dict[str, dict]:
    return {host: json.loads(bed.host_shell(host, ["cat", path]).stdout) for host in bed.hosts}


@pytest.fixture
def plan_record(testbed_two_clusters):
    path = "/etc/grove/plan-test.json"
    yield path
    for host in testbed_two_clusters.hosts:
        testbed_two_clusters.host_shell(host, ["rm", "-f", path])


def test_subnets_are_planned_recorded_and_kept_by_the_hosts(testbed_two_clusters, plan_record):
    bed, path = testbed_two_clusters, plan_record
    record_var = ["-e", f"grove_network_record_path={path}"]
    no_variables = ["-e", json.dumps({"grove_instance_subnet": ""})]
    bed.playbook(SUBNET_PLAN, *record_var)
    first = recorded(bed, path)
    expected = {host: bed.hosts[host]["grove_instance_subnet"] for host in bed.hosts}
    assert {host: record["instance_subnet"] for host, record in first.items()} == expected
    assert all(record["allocations"] == expected for record in first.values())

    # c2w1 is re-imaged (its record is gone) and no worker has a subnet variable any more: the
    # others remember its subnet, so it does not get the lowest free one (10.18.0.0/24).
    bed.host_shell("c2w1", ["rm", path])
    bed.playbook(SUBNET_PLAN, *record_var, *no_variables)
    assert {host: record["instance_subnet"] for host, record in recorded(bed, path).items()} == expected

    # c2w2 does not answer (left out of the run) and lost its record: it keeps its subnet in the plan.
    bed.host_shell("c2w2", ["rm", path])
    members = ["-e", json.dumps({"grove_network_hosts": sorted(bed.hosts)})]
    bed.playbook(SUBNET_PLAN, "--limit", "c1w1,c1w2,c2w1", *record_var, *no_variables, *members)
    for host in ("c1w1", "c1w2", "c2w1"):
        assert (
            json.loads(bed.host_shell(host, ["cat", path]).stdout)["allocations"]["c2w2"] == expected["c2w2"]
        )

    # A variable that contradicts a worker's record fails, naming the worker and both subnets.
    proc = bed.playbook(
        SUBNET_PLAN, *record_var, "-e", json.dumps({"grove_instance_subnet": "10.18.9.0/24"}), check=False
    )
    assert proc.returncode != 0 and "differs from the subnet" in proc.stdout
