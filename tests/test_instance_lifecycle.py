"""The instance lifecycle against real containerd on the test bed: the cases that
collections/.../test_lifecycle_plan.py plans on plain data, carried out for real."""

from __future__ import annotations

import time

import pytest
from test_instance import CURL, traces
from testbed_support import Testbed

pytestmark = pytest.mark.testbed

HOST = "c1w2"


def ensure(bed: Testbed, args: dict, **overrides) -> dict:
    result = bed.module(HOST, "grove.edge.instance", dict(args, subnet="10.18.2.0/24", **overrides))
    assert not result["failed"], result
    return result


def status_of(bed: Testbed, instance_id: str) -> str:
    instances = bed.module(HOST, "grove.edge.node_info", {})["node"]["instances"]
    return next((i["status"] for i in instances if i["id"] == instance_id), "UNDEPLOYED")


def wait_status(bed: Testbed, instance_id: str, wanted: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (status := status_of(bed, instance_id)) != wanted:
        assert time.monotonic() < deadline, f"{instance_id} is {status}, not {wanted}"
        time.sleep(0.3)


@pytest.fixture
def curl(testbed: Testbed):
    args = dict(CURL, service="grovetest.test.life.test")
    yield args
    testbed.remove_instance(HOST, args["service"])
    assert traces(testbed, HOST, "grovetest.test.life.test.instance.0") == []


ID = "grovetest.test.life.test.instance.0"


def test_stopped_keeps_container_and_network_and_started_brings_the_task_back(testbed: Testbed, curl):
    ensure(testbed, curl)
    stopped = ensure(testbed, curl, state="stopped")
    assert stopped["actions"] == ["stop task", "delete task", "update labels grove.state"]
    status, address = stopped["instance"]["status"], stopped["instance"]["address"]
    assert (status, stopped["instance"]["pid"]) == ("CREATED", None)
    assert ensure(testbed, curl, state="stopped")["changed"] is False
    started = ensure(testbed, curl)
    assert started["actions"] == ["update labels grove.state", "start task"]
    assert started["instance"]["status"] == "RUNNING"
    # The network stayed: the instance keeps its address for its life.
    assert started["instance"]["address"] == address


def test_a_killed_task_is_restarted_in_place(testbed: Testbed, curl):
    ensure(testbed, curl)
    testbed.host_shell(HOST, ["ctr", "-n", "grove", "tasks", "kill", "--signal", "SIGKILL", ID])
    wait_status(testbed, ID, "DEAD")
    restarted = ensure(testbed, curl)
    assert restarted["actions"] == ["delete task (exited with status 137)", "start task"]
    assert restarted["instance"]["status"] == "RUNNING"


def test_a_one_shot_that_completed_stays_completed(testbed: Testbed, curl):
    one_shot = dict(curl, spec=dict(curl["spec"], cmd=["sh", "-c", "exit 0"], one_shot=True))
    ensure(testbed, one_shot)
    wait_status(testbed, ID, "COMPLETED")
    again = ensure(testbed, one_shot)
    assert (again["changed"], again["instance"]["status"]) == (False, "COMPLETED")


def test_an_instance_whose_cni_cache_is_lost_is_attached_again(testbed: Testbed, curl):
    ensure(testbed, curl)
    testbed.host_shell(HOST, ["rm", "/var/lib/cni/results/grove-" + ID + "-eth0"])
    testbed.host_shell(HOST, ["ctr", "-n", "grove", "tasks", "kill", "--signal", "SIGKILL", ID])
    wait_status(testbed, ID, "DEAD")
    recovered = ensure(testbed, curl)
    assert "detach network (CNI DEL without cache)" in recovered["actions"]
    assert recovered["actions"][-1] == "start task"
    assert recovered["instance"]["status"] == "RUNNING"
    assert recovered["instance"]["address"].startswith("10.18.2.")
    # Nothing of the first attachment is left: the instance holds one IPAM allocation, the new one.
    owned = testbed.host_shell(HOST, ["grep", "-lrF", ID, "/var/lib/cni/networks/grove"]).stdout
    assert [line.rsplit("/", 1)[1] for line in owned.split()] == [recovered["instance"]["address"]]


def test_node_info_shows_the_tail_of_an_instances_log(testbed: Testbed, curl):
    talking = dict(
        curl,
        spec=dict(curl["spec"], cmd=["sh", "-c", "echo grove-log-line-1; echo line-2; tail -f /dev/null"]),
    )
    ensure(testbed, talking)
    deadline = time.monotonic() + 30
    while True:
        instances = testbed.module(HOST, "grove.edge.node_info", {})["node"]["instances"]
        tail = next(i["log_tail"] for i in instances if i["id"] == ID)
        if tail or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert tail == "grove-log-line-1\nline-2"
