"""playbooks/deploy.yml and undeploy.yml with descriptors, on the test bed (issue 3's acceptance)."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
from recap import recap, total_changed
from test_instance import HOSTILE, fetch
from testbed_support import REPO, Testbed

pytestmark = pytest.mark.testbed

SEED = json.loads((REPO / "examples" / "clientsrvr.json").read_text())
DEPLOY = REPO / "playbooks" / "deploy.yml"
UNDEPLOY = REPO / "playbooks" / "undeploy.yml"


def write(tmp_path, descriptor: dict, name: str = "descriptor.json"):
    path = tmp_path / name
    path.write_text(json.dumps(descriptor))
    return path


def instances_on(bed: Testbed) -> dict[str, dict]:
    """id -> node_info record (with the worker added) of every instance on every worker."""
    found = {}
    for host in bed.hosts:
        for instance in bed.module(host, "grove.edge.node_info", {})["node"]["instances"]:
            found[instance["id"]] = dict(instance, worker=host)
    return found


def undeploy(bed: Testbed, *args: str):
    # The seed's curl client ignores SIGTERM (sh as PID 1): don't wait the default 10 s for it.
    return bed.playbook(UNDEPLOY, *args, "-e", "grove_stop_timeout=2")


@pytest.fixture
def seed_file(tmp_path):
    return write(tmp_path, SEED)


def test_seed_app_deploys_serves_is_idempotent_and_undeploys(testbed: Testbed, seed_file):
    first = testbed.playbook(DEPLOY, "-e", f"descriptor={seed_file}")
    assert "clientsrvr.test.nginx.test.instance.0 cluster=cluster1" in first.stdout
    running = instances_on(testbed)
    nginx = running["clientsrvr.test.nginx.test.instance.0"]
    assert running["clientsrvr.test.curl.test.instance.0"]["status"] == "RUNNING"
    page = fetch(f"http://{testbed.hosts[nginx['worker']]['ansible_host']}:6080/")
    assert "Welcome to nginx!" in page

    second = testbed.playbook(DEPLOY, "-e", f"descriptor={seed_file}")
    assert total_changed(second.stdout) == 0

    undeploy(testbed, "-e", f"descriptor={seed_file}")
    assert not [i for i in instances_on(testbed) if i.startswith("clientsrvr.")]


def test_check_mode_prints_the_placement_and_starts_nothing(testbed: Testbed, seed_file):
    undeploy(testbed, "-e", f"descriptor={seed_file}")
    out = testbed.playbook(DEPLOY, "--check", "-e", f"descriptor={seed_file}").stdout
    assert "clientsrvr.test.nginx.test.instance.0 -> cluster1/" in out
    assert not [i for i in instances_on(testbed) if i.startswith("clientsrvr.")]


def test_invalid_descriptor_fails_with_every_error_before_any_host_is_touched(testbed: Testbed, tmp_path):
    bad = copy.deepcopy(SEED)
    bad["applications"][0]["microservices"][1]["port"] = "70000:80/tcp"
    bad["applications"][0]["microservices"][0]["microservice_name"] = "bad name!"
    proc = testbed.playbook(DEPLOY, "-e", f"descriptor={write(tmp_path, bad)}", check=False)
    assert proc.returncode != 0
    assert "applications[0].microservices[1].port" in proc.stdout
    assert "applications[0].microservices[0].microservice_name" in proc.stdout
    assert set(recap(proc.stdout)) == {"localhost"}


def test_instance_counts_scale_up_and_down_and_undeploy_narrows(testbed: Testbed, seed_file):
    nginx_svc = "clientsrvr.test.nginx.test"
    try:
        testbed.playbook(DEPLOY, "-e", f"descriptor={seed_file}", "-e", "instances=2")
        running = instances_on(testbed)
        assert {f"{nginx_svc}.instance.0", f"{nginx_svc}.instance.1"} <= set(running)
        # Both publish host port 6080: they must not share a worker.
        assert running[f"{nginx_svc}.instance.0"]["worker"] != running[f"{nginx_svc}.instance.1"]["worker"]

        testbed.playbook(
            UNDEPLOY, "-e", f"descriptor={seed_file}", "-e", f"service={nginx_svc}", "-e", "instance=1"
        )
        running = instances_on(testbed)
        assert f"{nginx_svc}.instance.1" not in running
        assert f"{nginx_svc}.instance.0" in running and "clientsrvr.test.curl.test.instance.1" in running

        testbed.playbook(DEPLOY, "-e", f"descriptor={seed_file}", "-e", "instances=1")
        running = instances_on(testbed)
        assert "clientsrvr.test.curl.test.instance.1" not in running
        assert "clientsrvr.test.curl.test.instance.0" in running
    finally:
        undeploy(testbed, "-e", f"descriptor={seed_file}")


def test_hostile_descriptor_values_stay_data(testbed: Testbed, tmp_path):
    hostile = copy.deepcopy(SEED)
    app = hostile["applications"][0]
    app["application_name"] = "hostile"
    app["application_desc"] = HOSTILE
    curl = app["microservices"][0]
    curl["environment"] = [f"PAYLOAD={HOSTILE}"]
    curl["cmd"] = ["sh", "-c", "tail -f /dev/null", HOSTILE]
    app["microservices"] = [curl]
    path = write(tmp_path, hostile)
    try:
        out = testbed.playbook(DEPLOY, "-e", f"descriptor={path}").stdout
        assert "uid=" not in out
        instance = "hostile.test.curl.test.instance.0"
        worker = instances_on(testbed)[instance]["worker"]
        env = testbed.exec_in(worker, instance, "sh", "-c", 'echo "$PAYLOAD"').stdout
        assert env.strip() == HOSTILE
    finally:
        undeploy(testbed, "-e", f"descriptor={path}")


def test_direct_constraint_lands_on_the_named_cluster_and_node(testbed_two_clusters: Testbed, tmp_path):
    pinned = copy.deepcopy(SEED)
    for service in pinned["applications"][0]["microservices"]:
        service["constraints"] = [{"type": "direct", "cluster": "cluster2", "node": "c2w2"}]
    path = write(tmp_path, pinned)
    try:
        testbed_two_clusters.playbook(DEPLOY, "-e", f"descriptor={path}")
        running = instances_on(testbed_two_clusters)
        assert running["clientsrvr.test.nginx.test.instance.0"]["worker"] == "c2w2"
        assert running["clientsrvr.test.curl.test.instance.0"]["worker"] == "c2w2"
        page = fetch(f"http://{testbed_two_clusters.hosts['c2w2']['ansible_host']}:6080/")
        assert "Welcome to nginx!" in page
    finally:
        undeploy(testbed_two_clusters, "-e", f"descriptor={path}")


def test_unplaceable_descriptor_names_the_oakestra_status(testbed: Testbed, tmp_path):
    greedy = copy.deepcopy(SEED)
    curl, nginx = greedy["applications"][0]["microservices"]
    nginx["vcpus"] = 640
    proc = testbed.playbook(DEPLOY, "-e", f"descriptor={write(tmp_path, greedy)}", check=False)
    assert proc.returncode != 0
    assert "clientsrvr.test.nginx.test instance 0: NoActiveClusterWithCapacity" in proc.stdout

    # Fits the cluster's aggregated free vcpus, but no single worker.
    vcpus = testbed.module("c1w1", "grove.edge.node_info", {})["node"]["vcpus"]
    curl["vcpus"], nginx["vcpus"] = 0.5, vcpus + 0.5
    path = write(tmp_path, greedy)
    try:
        proc = testbed.playbook(DEPLOY, "-e", f"descriptor={path}", check=False)
        assert proc.returncode != 0
        assert "clientsrvr.test.nginx.test instance 0: NO_WORKER_CAPACITY" in proc.stdout
        assert f"needs {vcpus + 0.5:g} vcpus" in proc.stdout
        # What fits is deployed (the curl client); nothing of nginx is.
        deployed = [i for i in instances_on(testbed) if i.startswith("clientsrvr.")]
        assert deployed == ["clientsrvr.test.curl.test.instance.0"]
    finally:
        undeploy(testbed, "-e", f"descriptor={path}", "-e", "grove_stop_timeout=2")


def test_instances_of_an_unreachable_worker_move_and_the_duplicate_goes_when_it_returns(
    testbed: Testbed, seed_file
):
    nginx = "clientsrvr.test.nginx.test.instance.0"
    testbed.playbook(DEPLOY, "-e", f"descriptor={seed_file}")
    lost = instances_on(testbed)[nginx]["worker"]
    (survivor,) = [h for h in testbed.hosts if h != lost]
    veth = "gv-" + lost
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    try:
        proc = testbed.playbook(DEPLOY, "-e", f"descriptor={seed_file}", check=False)
        assert recap(proc.stdout)[lost]["unreachable"] == 1
        assert f"{nginx} -> cluster1/{survivor}" in proc.stdout
        on_survivor = {
            i["id"] for i in testbed.module(survivor, "grove.edge.node_info", {})["node"]["instances"]
        }
        assert nginx in on_survivor
        assert "Welcome to nginx!" in fetch(f"http://{testbed.hosts[survivor]['ansible_host']}:6080/")
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    try:
        # The worker is back with its old copy: the next deploy keeps one of the two copies (the
        # scheduler picks deterministically) and removes the other.
        testbed.playbook(DEPLOY, "-e", f"descriptor={seed_file}", "-e", "grove_stop_timeout=2")
        holders = [
            host
            for host in testbed.hosts
            if nginx
            in {i["id"] for i in testbed.module(host, "grove.edge.node_info", {})["node"]["instances"]}
        ]
        assert len(holders) == 1, holders
        assert "Welcome to nginx!" in fetch(f"http://{testbed.hosts[holders[0]]['ansible_host']}:6080/")
        again = testbed.playbook(DEPLOY, "--diff", "-e", f"descriptor={seed_file}")
        assert total_changed(again.stdout) == 0, again.stdout
    finally:
        undeploy(testbed, "-e", f"descriptor={seed_file}")
