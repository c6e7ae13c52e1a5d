"""The instance lifecycle's plan (module_utils/_lifecycle.py): from what exists to the steps to take.

The plan is a pure function of plain data, so every case is spelled out here; the same cases run
for real against containerd on the test bed (tests/test_instance_lifecycle.py).
"""

import pytest
from ansible_collections.grove.edge.plugins.module_utils._lifecycle import Observed, plan_absent, plan_present

HASH = "wanted"
IMAGE = "docker.io/library/nginx:latest"
CACHE = {
    "result": {
        "interfaces": [{"name": "eth0", "sandbox": "/n"}],
        "ips": [{"address": "10.18.1.5/24", "interface": 0}],
    }
}


def container(**labels):
    return {
        "id": "a.b.c.d.instance.0",
        "labels": {"grove.spec-hash": HASH, "grove.address": "10.18.1.5", **labels},
    }


def attached(**fields):
    """An instance whose container and network are in place."""
    base = {"container": container(), "cache": CACHE, "netns": True, "ipam": ["10.18.1.5"]}
    base.update(fields)
    return Observed(**base)


def actions(steps):
    return [step.action for step in steps]


def started(observed, one_shot=False):
    return actions(plan_present(observed, start=True, wanted_hash=HASH, one_shot=one_shot, image=IMAGE))


def stopped(observed):
    return actions(plan_present(observed, start=False, wanted_hash=HASH, one_shot=False, image=IMAGE))


def test_nothing_there_pulls_attaches_and_runs():
    assert started(Observed(image_present=False)) == ["pull", "create_netns", "cni_add", "run"]
    assert started(Observed()) == ["create_netns", "cni_add", "run"]


def test_a_running_task_is_left_alone():
    assert started(attached(task={"status": "RUNNING"})) == []
    assert started(attached(task={"status": "PAUSED"})) == []


def test_an_exited_task_is_deleted_and_started_again():
    steps = plan_present(
        attached(task={"status": "STOPPED", "exit_status": 137}),
        start=True,
        wanted_hash=HASH,
        one_shot=False,
        image=IMAGE,
    )
    assert [(s.action, s.description) for s in steps] == [
        ("delete_task", "delete task (exited with status 137)"),
        ("start", "start task"),
    ]


def test_a_one_shot_that_completed_stays_completed():
    assert started(attached(task={"status": "STOPPED", "exit_status": 0}), one_shot=True) == []
    # ... but one that failed is run again, and a long-running service that exited 0 is restarted.
    assert started(attached(task={"status": "STOPPED", "exit_status": 1}), one_shot=True) == [
        "delete_task",
        "start",
    ]
    assert started(attached(task={"status": "STOPPED", "exit_status": 0})) == ["delete_task", "start"]


def test_stopped_keeps_the_container_and_its_network_but_no_task():
    assert stopped(attached(task={"status": "RUNNING"})) == ["stop", "delete_task", "label_stopped"]
    assert stopped(attached(container=container(**{"grove.state": "stopped"}))) == []
    # From stopped back to started: the state label goes, the task starts.
    steps = plan_present(
        attached(container=container(**{"grove.state": "stopped"})),
        start=True,
        wanted_hash=HASH,
        one_shot=False,
        image=IMAGE,
    )
    assert [(s.action, s.description) for s in steps] == [
        ("label_started", "update labels grove.state"),
        ("start", "start task"),
    ]
    assert stopped(Observed()) == ["create_netns", "cni_add", "create"]


def test_a_lost_cni_cache_is_detached_without_it_and_attached_again():
    # A crash between CNI ADD and writing the cache, or /var/lib/cni wiped: the namespace and the
    # IPAM allocation are there but nothing says what ADD did.
    lost = attached(cache=None, task=None)
    assert started(lost) == [
        "cni_del_uncached",
        "delete_netns",
        "create_netns",
        "cni_add",
        "label_started",
        "start",
    ]
    assert actions(plan_absent(Observed(netns=True, ipam=["10.18.1.5"]))) == [
        "cni_del_uncached",
        "delete_netns",
    ]


def test_a_vanished_namespace_is_rebuilt_before_the_task_starts():
    gone = attached(netns=False, task={"status": "STOPPED", "exit_status": 255})
    assert started(gone) == ["delete_task", "cni_del", "create_netns", "cni_add", "label_started", "start"]


def test_a_changed_spec_recreates_everything():
    changed = attached(container=container(**{"grove.spec-hash": "old"}), task={"status": "RUNNING"})
    steps = plan_present(changed, start=True, wanted_hash=HASH, one_shot=False, image=IMAGE)
    assert [s.description for s in steps] == [
        "configuration changed: stop task",
        "configuration changed: delete task",
        "configuration changed: delete container",
        "detach network (CNI DEL)",
        "delete network namespace",
        "create network namespace",
        "attach network (CNI ADD)",
        "run container",
    ]


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        (Observed(), []),
        (
            attached(task={"status": "RUNNING"}),
            ["stop", "delete_task", "delete_container", "cni_del", "delete_netns"],
        ),
        (
            Observed(snapshot=True, log_file=True, names_file=True),
            ["delete_snapshot", "delete_log", "delete_names"],
        ),
        (Observed(nat_rules=[["CNI-x", "-j", "MASQUERADE"]]), ["remove_nat"]),
        (
            attached(task={"status": "STOPPED", "exit_status": 0}, netns=False),
            ["delete_task", "delete_container", "cni_del"],
        ),
    ],
)
def test_absent_removes_whatever_is_left(observed, expected):
    assert actions(plan_absent(observed)) == expected
