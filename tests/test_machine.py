"""The final leftover check (tests/machine.py) sees what a test run leaves behind, and only that."""

from __future__ import annotations

import os
import subprocess

import pytest
from machine import SESSION_TAG, Snapshot, wait_clean

from grove.testbed import bed

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, links, mounts)"),
    pytest.mark.usefixtures("machine_lock"),
]

LEAK = f"grovet-leak{os.getpid() % 10000}"  # short enough for a link name
ROUTE = "10.99.254.0/24"  # inside the test bed's own range, and unreachable: nothing is ever sent


def _released_sleep(env: dict[str, str]) -> int:
    """A process whose parent exits at once, as daemons and SSH control masters do."""
    argv = ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"]
    return int(subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def test_each_kind_of_leftover_is_seen_and_the_machine_s_other_processes_are_not(tmp_path):
    before = Snapshot.take()
    made_netns_dir = not bed.netns_dir_mounted()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    untagged_env = {k: v for k, v in os.environ.items() if k != SESSION_TAG}
    pids = []
    ours = subprocess.Popen(["sleep", "300"])  # still in the session's hands: not a leftover
    try:
        subprocess.run(["ip", "netns", "add", LEAK], check=True)
        subprocess.run(["ip", "link", "add", LEAK, "type", "bridge"], check=True)
        subprocess.run(["ip", "route", "add", "unreachable", ROUTE, "metric", "4343"], check=True)
        subprocess.run(["nft", "add", "table", "inet", LEAK.replace("-", "_")], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", LEAK, str(mountpoint)], check=True)
        pids.append(released := _released_sleep(dict(os.environ)))
        pids.append(_released_sleep(untagged_env))  # the machine's, as far as the check can tell

        added = Snapshot.take().added_since(before)
        assert {line.split()[0] for line in added["netns"]} == {LEAK}
        assert added["links"] == {LEAK}
        (route,) = added["routes"]
        assert route.startswith(f"unreachable {ROUTE} ")
        assert added["nft_tables"] == {f"table inet {LEAK.replace('-', '_')}"}
        mounts = {m.split()[1] for m in added["mounts"]}
        # (and /run/netns itself, where `ip netns add` had never run before)
        assert mounts - {"/run/netns"} == {str(mountpoint), f"/run/netns/{LEAK}"}
        assert added["processes"] == {f"{released} sleep 300"}
    finally:
        ours.kill()
        ours.wait()
        for pid in pids:
            _kill(pid)
        subprocess.run(["umount", str(mountpoint)], check=False)
        subprocess.run(["nft", "delete", "table", "inet", LEAK.replace("-", "_")], check=False)
        subprocess.run(["ip", "route", "delete", "unreachable", ROUTE, "metric", "4343"], check=False)
        subprocess.run(["ip", "link", "delete", LEAK], check=False)
        subprocess.run(["ip", "netns", "delete", LEAK], check=False)
        if made_netns_dir:
            bed.release_netns_dir()
    assert wait_clean(before) == {}
