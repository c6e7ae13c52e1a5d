"""The local edge test bed: hosts that answer SSH, private runtime directories, safety, clean removal."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from machine import Snapshot, wait_clean
from testbed_support import BIN, REPO, Testbed, ansible_env, bring_up, forget_testbed, grove, needs_root

from grove.testbed.bed import release_netns_dir

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


def test_down_leaves_nothing_behind_even_with_containers_running(testbed_session):
    needs_root()
    grove("testbed", "down")
    forget_testbed()
    # As on a machine where `ip netns add` never ran: /run/netns is no mount yet (when nobody else's
    # namespace is there), so the one the test bed's first namespace makes must go with it.
    release_netns_dir()
    before = Snapshot.take()
    bed = bring_up(1, 2)
    bed.playbook(REPO / "playbooks" / "workers.yml")
    bed.playbook(REPO / "tests" / "playbooks" / "instance_nginx.yml", extravars={"target": "c1w1"})
    grove("testbed", "down")
    forget_testbed()
    assert wait_clean(before) == {}


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
    assert wait_clean(before) == {}


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


def _known_hosts(bed: Testbed) -> Path:
    """The file the inventory's SSH options trust, and only that one."""
    args = shlex.split(yaml.safe_load(bed.inventory.read_text())["all"]["vars"]["ansible_ssh_common_args"])
    options = dict(arg.split("=", 1) for arg in args if "=" in arg)
    assert options["StrictHostKeyChecking"] == "yes"
    assert options["GlobalKnownHostsFile"] == "/dev/null"
    return Path(options["UserKnownHostsFile"])


@pytest.fixture
def fresh_connections(tmp_path) -> Iterator[dict[str, str]]:
    """An environment for ansible with no SSH control master to reuse: every host is connected to,
    and its key checked, anew. The masters it starts are stopped at the end."""
    control_dir = tmp_path / "cp"
    control_dir.mkdir()
    yield dict(ansible_env(), ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir))
    for socket_path in control_dir.iterdir():
        stop = ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "master"]
        subprocess.run(stop, capture_output=True, check=False)


def _ping(bed: Testbed, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible"), "-i", str(bed.inventory), "all", "-m", "ansible.builtin.ping", *args],
        capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=120,
    )  # fmt: skip


def test_the_inventory_trusts_exactly_the_keys_the_hosts_present(testbed: Testbed, fresh_connections):
    entries = [line.split() for line in _known_hosts(testbed).read_text().splitlines()]
    trusted = {address: (key_type, key) for address, key_type, key in entries}
    addresses = {hostvars["ansible_host"] for hostvars in testbed.hosts.values()}
    assert set(trusted) == addresses
    for address in addresses:
        scanned = subprocess.run(
            ["ssh-keyscan", "-t", "ed25519", address], capture_output=True, text=True, check=True
        ).stdout.split()
        assert tuple(scanned[1:3]) == trusted[address]
    proc = _ping(testbed, fresh_connections, "-vvv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(f"{host} | SUCCESS" in proc.stdout for host in testbed.hosts)
    # The SSH command ansible ran checks the key: nothing in ansible.cfg turned checking off.
    commands = [line for line in proc.stdout.splitlines() if "SSH: EXEC ssh" in line]
    assert commands
    for command in commands:
        assert set(re.findall(r"StrictHostKeyChecking=(\S+)", command)) == {"yes"}, command
        assert f"UserKnownHostsFile={_known_hosts(testbed)}" in command


@pytest.mark.parametrize("change", ["another key", "no key"])
def test_a_host_that_does_not_present_its_known_key_is_refused(
    testbed: Testbed, fresh_connections, tmp_path, change
):
    known_hosts = _known_hosts(testbed)
    trusted = known_hosts.read_text()
    address = testbed.hosts["c1w1"]["ansible_host"]
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    replacement = f"{address} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n"
    lines = [line + "\n" for line in trusted.splitlines() if not line.startswith(f"{address} ")]
    known_hosts.write_text("".join(lines) + (replacement if change == "another key" else ""))
    try:
        proc = _ping(testbed, fresh_connections)
        unreachable = proc.stdout.split("c1w1 | UNREACHABLE! =>", 1)
        assert len(unreachable) == 2, proc.stdout
        assert "Host key verification failed." in unreachable[1].split("\n\n")[0]
        if change == "another key":
            assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in unreachable[1]
        assert "c1w2 | SUCCESS" in proc.stdout
        refused = testbed.host_shell("c1w1", ["true"], check=False)
        assert refused.returncode == 255 and "Host key verification failed." in refused.stderr
    finally:
        known_hosts.write_text(trusted)
    assert testbed.host_shell("c1w1", ["hostname"]).stdout.strip() == "c1w1"
