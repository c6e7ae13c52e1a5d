"""Fixtures: the local edge test bed, brought up once per shape and removed at the end of the run."""

from __future__ import annotations

import pytest
from machine import Snapshot
from testbed_support import Testbed, bring_up, ensure_containerd, forget_testbed, grove, needs_root


@pytest.fixture(scope="session")
def testbed_session():
    needs_root()
    yield bring_up
    grove("testbed", "down")
    forget_testbed()
    # Whatever the tests did, removing the test bed must leave none of its parts behind.
    leftovers = Snapshot.take()
    assert not [n for n in leftovers.netns if n.startswith("grove-")], leftovers.netns
    assert "grovebr0" not in leftovers.links
    assert not [t for t in leftovers.nft_tables if "grove_testbed" in t]
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
