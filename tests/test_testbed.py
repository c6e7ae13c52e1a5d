"""The local edge test bed: hosts that answer SSH, private runtime directories, safety, clean removal."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from machine import Snapshot
from testbed_support import REPO, Testbed, bring_up, forget_testbed, grove, needs_root

pytestmark = pytest.mark.testbed


def test_hosts_answer_ssh_and_have_their_own_names(testbed: Testbed):
    for name in testbed.hosts:
        assert testbed.host_shell(name, ["hostname"]).stdout.strip() == name
    status = grove("testbed", "status").stdout
    assert "c1w1" in status and "c1w2" in status and "NOT ANSWERING" not in status


def test_runtime_directories_are_private_per_host(testbed: Testbed):
    marker = f"/etc/cni/grove-private-{time.monotonic_ns()}"
    testbed.host_shell("c1w1", ["touch", marker])
    try:
        assert testbed.host_shell("c1w1", ["test", "-e", marker], check=False).returncode == 0
        assert testbed.host_shell("c1w2", ["test", "-e", marker], check=False).returncode != 0
        assert subprocess.run(["test", "-e", marker], check=False).returncode != 0
    finally:
        testbed.host_shell("c1w1", ["rm", "-f", marker])


def test_each_host_runs_its_own_containerd(testbed: Testbed):
    sockets = {testbed.host_shell(h, ["ctr", "version"]).returncode for h in testbed.hosts}
    assert sockets == {0}
    pids = {h: testbed.host_shell(h, ["pgrep", "-x", "containerd"]).stdout.split() for h in testbed.hosts}
    # Each host has its own PID namespace: its containerd is alone there.
    assert all(len(p) == 1 for p in pids.values())


def test_no_route_leaves_the_machine(testbed: Testbed):
    for address in ("10.30.1.1", "10.18.200.1", "10.99.200.200"):
        route = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, check=False)
        assert "eth0" not in route.stdout, route.stdout
    for name, hostvars in testbed.hosts.items():
        netns = hostvars["grove_testbed_netns"]
        routes = subprocess.run(
            ["ip", "-n", netns, "route", "show", "default"], capture_output=True, text=True, check=True
        ).stdout
        assert routes.strip() == "", f"{name} has a default route: {routes}"


NO_PROXY_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def test_registry_serves_the_seed_images(testbed: Testbed):
    for repository in ("library/nginx", "curlimages/curl"):
        proc = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://10.99.0.1:5000/{repository}:latest"],
            capture_output=True,
            text=True,
            check=True,
            env=NO_PROXY_ENV,
        )
        manifest = json.loads(proc.stdout)
        assert manifest["Digest"].startswith("sha256:") and manifest["Architecture"]


def test_second_up_reuses_the_running_bed(testbed: Testbed):
    out = grove("-v", "testbed", "up", "--clusters", "1", "--workers", "2").stderr
    assert "already up" in out
    assert "building" not in out


def _wait_clean(before: Snapshot, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        added = Snapshot.take().added_since(before)
        if not added or time.monotonic() > deadline:
            return added
        time.sleep(0.2)


def test_down_leaves_nothing_behind_even_with_containers_running(testbed_session):
    needs_root()
    grove("testbed", "down")
    forget_testbed()
    before = Snapshot.take()
    bed = bring_up(1, 2)
    bed.playbook(REPO / "playbooks" / "workers.yml")
    bed.playbook(REPO / "tests" / "playbooks" / "instance_nginx.yml", extravars={"target": "c1w1"})
    grove("testbed", "down")
    forget_testbed()
    assert _wait_clean(before) == {}


def test_down_cleans_up_after_a_crash_half_way_through_up(testbed_session):
    needs_root()
    grove("testbed", "down")
    forget_testbed()
    before = Snapshot.take()
    crashed = grove(
        "testbed", "up", "--workers", "3", check=False, env={"GROVE_TESTBED_CRASH_AFTER_HOSTS": "2"}
    )
    assert crashed.returncode == 70
    assert any(n.startswith("grove-") for n in Snapshot.take().netns)
    grove("testbed", "down")
    assert _wait_clean(before) == {}


def test_bad_shapes_are_refused_and_the_running_bed_is_kept(testbed: Testbed):
    for args, reason in (
        (["--clusters", "0"], "--clusters must be between 1 and"),
        (["--workers", "201"], "--workers must be between 1 and"),
        (["--clusters", "2"], "run `grove testbed down` first"),
    ):
        proc = grove("testbed", "up", *args, check=False)
        assert proc.returncode == 2
        assert reason in proc.stderr
    assert "NOT ANSWERING" not in grove("testbed", "status").stdout
    assert testbed.host_shell("c1w1", ["hostname"]).stdout.strip() == "c1w1"
