"""Fixtures: the local edge test bed, brought up once per shape and removed at the end of the run."""

from __future__ import annotations

import pytest
from testbed_support import Testbed, bring_up, ensure_containerd, forget_testbed, grove, needs_root


@pytest.fixture(scope="session")
def testbed_session():
    needs_root()
    yield bring_up
    grove("testbed", "down")
    forget_testbed()


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
