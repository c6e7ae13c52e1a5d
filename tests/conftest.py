"""Fixtures: the local edge test bed, brought up once per shape and removed at the end of the run."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator

import pytest
from machine import Snapshot, tag_session, wait_clean
from testbed_support import Testbed, bring_up, ensure_containerd, forget_testbed, grove, needs_root

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


@pytest.fixture
def testbed(testbed_session) -> Testbed:
    """One cluster of two workers with containerd configured by the containerd role."""
    return _shaped(testbed_session, "testbed")


@pytest.fixture
def testbed_two_clusters(testbed_session) -> Testbed:
    """Two clusters of two workers each, with containerd configured by the containerd role."""
    return _shaped(testbed_session, "testbed_two_clusters")
