"""Fixtures: the local edge test bed, brought up once per shape and removed at the end of the run.

The session is ordered by the test bed each test needs (`pytest_collection_modifyitems`), so that
the test bed is built once per shape instead of each time consecutive tests need different ones.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator

import pytest
from machine import Snapshot, tag_session, wait_clean
from testbed_support import (
    Testbed,
    bring_up,
    current_testbed,
    ensure_containerd,
    forget_testbed,
    grove,
    needs_root,
)

# There is one test bed per machine (its names and address ranges are fixed): two test runs at once
# would tear down each other's hosts, so a run holds this lock for as long as it uses the test bed.
TESTBED_LOCK = "/run/lock/grove-testbed.lock"

# The fixtures that give a ready test bed of one shape: (clusters, workers per cluster).
SHAPES = {"testbed": (1, 2), "testbed_two_clusters": (2, 2)}

_BEFORE = pytest.StashKey[Snapshot]()


def pytest_sessionstart(session: pytest.Session) -> None:
    tag_session()
    # What the machine held before this session touched it; the session must end with no more.
    if os.geteuid() == 0 and shutil.which("ip") and shutil.which("nft"):
        session.config.stash[_BEFORE] = Snapshot.take()


def _order(item: pytest.Item) -> int:
    """Where a test runs: 0 without the machine lock, 1 with it but without a test bed, 2 when it
    builds its own test beds (takes `testbed_session` itself), then one group per shape."""
    names = getattr(item, "fixturenames", ())
    for rank, fixture in enumerate(SHAPES, start=3):
        if fixture in names:
            return rank
    if "testbed_session" in names:
        return 2
    return 1 if "machine_lock" in names else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Building the test bed for another shape (with the containerd role) costs ~14 s each time:
    # group the tests by the test bed they need. The sort is stable, so within a group the tests
    # keep their collection order.
    items.sort(key=_order)


@pytest.fixture(scope="session")
def machine_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Held by tests that make namespaces, links or mounts on the machine, for the rest of the
    session, so that no other run's final check mistakes theirs for its own leftovers."""
    needs_root()
    with open(TESTBED_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
        before = request.config.stash.get(_BEFORE, None)
        if before is not None:
            _check_nothing_left(before)


@pytest.fixture(scope="session")
def testbed_session(machine_lock):
    yield bring_up
    grove("testbed", "down")
    forget_testbed()


def _check_nothing_left(before: Snapshot) -> None:
    # Whatever the tests did, removing the test bed must leave none of its parts behind: no
    # namespace, link, route, nftables table, mount or process that was not there at the start.
    added = wait_clean(before)
    assert not added, f"left behind by the test session: {added}"


def _shaped(testbed_session, fixture: str) -> Testbed:
    bed = testbed_session(*SHAPES[fixture])
    ensure_containerd(bed)
    return bed


@pytest.fixture(scope="module", autouse=True)
def _no_instances_left_by_the_module() -> Iterator[None]:
    # The test bed outlives each test module: an instance a module leaves takes capacity from the
    # next ones and fails them for no reason of their own. Fail the module's last test, and remove
    # what it left. (Per module, not per test: a module's tests may share instances.)
    yield
    bed = current_testbed()
    if bed is None:
        return
    left = {}
    for host in bed.hosts:
        proc = bed.host_shell(host, ["ctr", "-n", "grove", "containers", "ls", "-q"], check=False)
        if ids := proc.stdout.split():
            left[host] = ids
            for container in ids:
                _remove(bed, host, container)
    assert not left, f"containers left on the test bed's workers: {left}"


def _remove(bed: Testbed, host: str, container: str) -> None:
    service, _, number = container.rpartition(".instance.")
    if service and number.isdigit():
        args = {"service": service, "instance_number": int(number), "state": "absent"}
        bed.module(host, "grove.edge.instance", dict(args, stop_timeout=1))
        return
    for argv in (["task", "rm", "-f", container], ["containers", "rm", container]):
        bed.host_shell(host, ["ctr", "-n", "grove", *argv], check=False)


@pytest.fixture
def testbed(testbed_session) -> Testbed:
    """One cluster of two workers with containerd configured by the containerd role."""
    return _shaped(testbed_session, "testbed")


@pytest.fixture
def testbed_two_clusters(testbed_session) -> Testbed:
    """Two clusters of two workers each, with containerd configured by the containerd role."""
    return _shaped(testbed_session, "testbed_two_clusters")
