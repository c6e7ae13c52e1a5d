"""Each role's molecule scenario (converge, idempotence, verify) on a fresh test bed."""

from __future__ import annotations

import subprocess

import pytest
from testbed_support import REPO, ansible_env, forget_testbed, grove

pytestmark = pytest.mark.testbed

ROLES = sorted(p.parent.parent.parent.name for p in (REPO / "roles").glob("*/molecule/default/molecule.yml"))


@pytest.mark.parametrize("role", ROLES)
def test_molecule_scenario_passes_with_idempotence(testbed_session, role):
    # A fresh test bed: the converge must really change the hosts, and the idempotence step then
    # proves that a second converge changes nothing.
    grove("testbed", "down")
    forget_testbed()
    proc = subprocess.run(
        ["molecule", "test"],
        cwd=REPO / "roles" / role,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    forget_testbed()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "idempotence: Executed: Successful" in output
    assert "verify: Executed: Successful" in output
    assert "converge: Executed: Successful" in output


def test_there_is_a_scenario_for_every_role():
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert roles == ROLES
