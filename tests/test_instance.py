"""grove.edge.instance and grove.edge.node_info on real worker hosts (issue 2's acceptance)."""

from __future__ import annotations

import json
import time

import pytest
from helpers.instance_checks import cgroup_limits, leftovers, wait_http
from recap import recap
from testbed_support import REPO, Testbed

pytestmark = pytest.mark.testbed

NGINX_ID = "clientsrvr.test.nginx.test.instance.0"
CURL = {
    "service": "grovetest.test.curl.test",
    "instance_number": 0,
    "spec": {
        "image": "docker.io/curlimages/curl:latest",
        "cmd": ["sh", "-c", "tail -f /dev/null"],
        "memory": 64,
        "vcpus": 0.5,
    },
    "stop_timeout": 2,
}
CURL_ID = "grovetest.test.curl.test.instance.0"
HOSTILE = "{{ lookup('pipe','id') }}"


def fetch(url: str) -> str:
    """GET a test bed address directly (never through a proxy), polling until nginx answers."""
    return wait_http(url, contains="Welcome to nginx!")


def nginx_playbook(bed: Testbed, state: str = "started"):
    return bed.playbook(
        REPO / "tests" / "playbooks" / "instance_nginx.yml",
        extravars={"target": "c1w1", "instance_state": state},
    )


@pytest.fixture
def with_nginx(testbed: Testbed):
    """The test bed, and nginx removed from c1w1 again after the test (the tests start it)."""
    yield testbed
    nginx_playbook(testbed, "absent")


def traces(bed: Testbed, host: str, instance: str) -> list[str]:
    """Everything of an instance a host still holds; empty when it is fully gone."""
    return leftovers(lambda argv: bed.host_shell(host, list(argv), check=False), instance)


def diff_sides(stdout: str) -> tuple[dict, dict]:
    """The before and after records of the one `--diff` a play printed (a unified diff of JSON)."""
    lines = stdout.split("--- before\n+++ after\n", 1)[1].split("\n\n", 1)[0].splitlines()
    body = [line for line in lines if not line.startswith("@@")]
    before = json.loads("\n".join(line[1:] for line in body if line[:1] in (" ", "-")))
    after = json.loads("\n".join(line[1:] for line in body if line[:1] in (" ", "+")))
    return before, after


def test_nginx_serves_on_its_mapped_port_and_rerun_changes_nothing(with_nginx: Testbed):
    testbed = with_nginx
    first = nginx_playbook(testbed)
    assert recap(first.stdout)["c1w1"]["changed"] == 1
    page = fetch(f"http://{testbed.hosts['c1w1']['ansible_host']}:6080/")
    assert "Welcome to nginx!" in page
    second = nginx_playbook(testbed)
    assert recap(second.stdout)["c1w1"]["changed"] == 0


def test_node_info_reports_the_running_instance_with_its_resources(with_nginx: Testbed):
    testbed = with_nginx
    nginx_playbook(testbed)
    node = testbed.module("c1w1", "grove.edge.node_info", {})["node"]
    assert node["vcpus"] >= 1 and node["memory_mb"] > 0 and node["architecture"]
    assert "container" in node["runtimes"]
    by_id = {i["id"]: i for i in node["instances"]}
    nginx = by_id[NGINX_ID]
    assert nginx["status"] == "RUNNING"
    assert nginx["service"] == "clientsrvr.test.nginx.test" and nginx["instance_number"] == 0
    assert nginx["resources"]["memory"] == 100 and nginx["resources"]["vcpus"] == 1
    assert nginx["host_ports"] == ["6080/tcp"]
    assert nginx["address"].startswith("10.18.1.")
    # What it uses, from its cgroup: the API turns two samples into cpu_percent and memory_percent.
    assert nginx["usage"]["memory_limit_bytes"] == 100 * 1024 * 1024
    assert 0 < nginx["usage"]["memory_bytes"] < nginx["usage"]["memory_limit_bytes"]
    assert nginx["usage"]["cpu_ns"] > 0
    assert node["cpu_times"]["total"] > node["cpu_times"]["busy"] > 0
    other = testbed.module("c1w2", "grove.edge.node_info", {})["node"]
    assert NGINX_ID not in {i["id"] for i in other["instances"]}


def test_absent_leaves_no_container_snapshot_netns_ipam_or_rule(with_nginx: Testbed):
    testbed = with_nginx
    nginx_playbook(testbed)
    assert traces(testbed, "c1w1", NGINX_ID), "the instance should exist before removal"
    removed = nginx_playbook(testbed, "absent")
    assert recap(removed.stdout)["c1w1"]["changed"] == 1
    assert traces(testbed, "c1w1", NGINX_ID) == []
    again = nginx_playbook(testbed, "absent")
    assert recap(again.stdout)["c1w1"]["changed"] == 0


def test_curl_client_runs_and_task_exec_reaches_nginx_on_another_worker(with_nginx: Testbed):
    testbed = with_nginx
    nginx_playbook(testbed)
    result = testbed.module("c1w2", "grove.edge.instance", dict(CURL, subnet="10.18.2.0/24"))
    assert not result.get("failed"), result
    try:
        url = f"http://{testbed.hosts['c1w1']['ansible_host']}:6080/"
        deadline = time.monotonic() + 30
        while True:
            proc = testbed.exec_in("c1w2", CURL_ID, "curl", "-fsS", url, check=False)
            if proc.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert "Welcome to nginx!" in proc.stdout, proc.stderr
    finally:
        testbed.remove_instance("c1w2", CURL["service"])


def test_check_mode_reports_a_change_and_touches_nothing(testbed: Testbed):
    args = dict(CURL, service="grovetest.test.check.test", subnet="10.18.2.0/24")
    result = testbed.module("c1w2", "grove.edge.instance", args, check_mode=True)
    assert result["changed"] is True
    assert traces(testbed, "c1w2", "grovetest.test.check.test.instance.0") == []


def test_a_changed_spec_recreates_the_instance_and_limits_apply(testbed: Testbed):
    args = dict(CURL, subnet="10.18.2.0/24")
    try:
        assert testbed.module("c1w2", "grove.edge.instance", args)["changed"] is True
        assert testbed.module("c1w2", "grove.edge.instance", args)["changed"] is False
        bigger = dict(args, spec=dict(args["spec"], memory=96))
        result = testbed.module("c1w2", "grove.edge.instance", bigger)
        assert result["changed"] is True
        assert "configuration changed: delete container" in result["actions"]
        # cgroup v1 (hybrid hierarchies, as here) or v2 only (Debian 12 under systemd): both count.
        limits = cgroup_limits(lambda argv: testbed.host_shell("c1w2", list(argv), check=False), CURL_ID)
        assert limits["memory"] == 96 * 1024 * 1024
        assert limits["cpu_quota"] * 2 == limits["cpu_period"]  # vcpus 0.5
    finally:
        testbed.remove_instance("c1w2", CURL["service"])


def test_hostile_strings_reach_the_container_verbatim(testbed: Testbed):
    playbook = REPO / "tests" / "playbooks" / "instance_hostile.yml"
    instance = "grovetest.test.hostile.test.instance.0"
    try:
        testbed.playbook(playbook, extravars={"target": "c1w2"})
        echo = testbed.exec_in("c1w2", instance, "sh", "-c", 'echo "$HOSTILE|$SHELLISH"').stdout
        assert echo.strip() == f"{HOSTILE}|$(id) `id`; rm -rf /"
        args = testbed.host_shell("c1w2", ["sh", "-c", f"ctr -n grove containers info {instance}"]).stdout
        assert json.loads(args)["Spec"]["process"]["args"][-2:] == [HOSTILE, "$(id)"]
    finally:
        testbed.playbook(playbook, extravars={"target": "c1w2", "instance_state": "absent"})


def test_bandwidth_limits_shape_the_instance_link(testbed: Testbed):
    args = dict(
        CURL,
        service="grovetest.test.shaped.test",
        subnet="10.18.2.0/24",
        spec=dict(CURL["spec"], bandwidth_in=800, bandwidth_out=400),
    )
    assert "tbf" not in testbed.host_shell("c1w2", ["tc", "qdisc", "show"]).stdout
    instance = "grovetest.test.shaped.test.instance.0"
    try:
        result = testbed.module("c1w2", "grove.edge.instance", args)
        assert not result.get("failed"), result
        # The CNI bandwidth plugin shapes the worker's side of the instance's veth (and an ifb).
        qdiscs = testbed.host_shell("c1w2", ["tc", "qdisc", "show"]).stdout
        assert "tbf" in qdiscs, qdiscs
    finally:
        testbed.remove_instance("c1w2", args["service"])
    assert traces(testbed, "c1w2", instance) == []
    assert "tbf" not in testbed.host_shell("c1w2", ["tc", "qdisc", "show"]).stdout


def test_a_failing_step_names_the_instance_the_step_and_containerd_stderr(testbed: Testbed):
    args = dict(
        CURL,
        service="grovetest.test.missing.test",
        spec=dict(CURL["spec"], image="docker.io/library/nosuchimage:latest"),
        subnet="10.18.2.0/24",
    )
    result = testbed.module("c1w2", "grove.edge.instance", args)
    assert result["failed"] is True
    assert result["msg"].startswith("instance grovetest.test.missing.test.instance.0: pull image")
    assert "docker.io/library/nosuchimage:latest: not found" in result["stderr"], result["stderr"]
    assert traces(testbed, "c1w2", "grovetest.test.missing.test.instance.0") == []


def test_diff_mode_shows_what_would_change(with_nginx: Testbed):
    testbed = with_nginx
    nginx_playbook(testbed)
    proc = testbed.playbook(
        REPO / "tests" / "playbooks" / "instance_nginx.yml",
        "--check",
        "--diff",
        extravars={"target": "c1w1", "instance_state": "absent"},
    )
    before, after = diff_sides(proc.stdout)
    assert after == {"state": "absent"}
    assert {key: before[key] for key in ("state", "status", "image", "ports")} == {
        "state": "started",
        "status": "RUNNING",
        "image": "docker.io/library/nginx:latest",
        "ports": "6080:80/tcp",
    }
    assert recap(proc.stdout)["c1w1"]["changed"] == 1
    assert "Welcome to nginx!" in fetch(f"http://{testbed.hosts['c1w1']['ansible_host']}:6080/")
