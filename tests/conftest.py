"""Fixtures: the local edge test bed, brought up once per shape and removed at the end of the run."""

from __future__ import annotations

import fcntl

import pytest
from machine import Snapshot
from testbed_support import Testbed, bring_up, ensure_containerd, forget_testbed, grove, needs_root

# There is one test bed per machine (its names and address ranges are fixed): two test runs at once
# would tear down each other's hosts, so a run holds this lock for as long as it uses the test bed.
TESTBED_LOCK = "/run/lock/grove-testbed.lock"


@pytest.fixture(scope="session")
def testbed_session():
    needs_root()
    with open(TESTBED_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield bring_up
        _tear_down_and_check()


def _tear_down_and_check() -> None:
    grove("testbed", "down")
    forget_testbed()
    # Whatever the tests did, removing the test bed must leave none of its parts behind.
    leftovers = Snapshot.take()
    assert not [n for n in leftovers.netns if n.startswith("grove-")], leftovers.netns
    assert not [link for link in leftovers.links if link.startswith(("grovebr0", "grove-", "gv-"))]
    # The test bed's own table, and none of the tables Grove's modules own (grove_overlay,
    # grove_services), which live in the hosts' namespaces and must go with them.
    assert not [t for t in leftovers.nft_tables if "grove_" in t]
    assert not [r for r in leftovers.routes if "10.99." in r or "10.18." in r or "10.30." in r]


@pytest.fixture
def testbed(testbed_session) -> Testbed:
    """One cluster of two workers with containerd configured by the containerd role."""
    bed = testbed_session(1, 2)
    ensure_containerd(bed)
    return bed


@pytest.fixture
def testbed_two_clusters(testbed_session) -> Testbed:
    bed = testbed_session(2, 2)
    ensure_containerd(bed)
    return bed
