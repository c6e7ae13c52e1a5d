"""`make demo`'s script: the seed's walkthrough on the test bed, shown working."""

from __future__ import annotations

import subprocess

import pytest
from testbed_support import REPO, Testbed, ansible_env

pytestmark = pytest.mark.testbed


def test_demo_deploys_the_seed_app_and_shows_nginx_from_outside_and_from_the_client(testbed: Testbed):
    seed = str(REPO / "examples" / "clientsrvr.json")
    # A proxy that answers nothing, on loopback: anything that wrongly sends test bed traffic to a
    # proxy from the environment fails here instead of carrying it off the machine.
    dead_proxy = "http://127.0.0.1:9"
    env = dict(
        ansible_env(),
        http_proxy=dead_proxy,
        https_proxy=dead_proxy,
        HTTP_PROXY=dead_proxy,
        HTTPS_PROXY=dead_proxy,
        no_proxy="",
        NO_PROXY="",
    )
    try:
        proc = subprocess.run(
            [str(REPO / "scripts" / "demo.sh")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        nginx_page = proc.stdout.split("==> nginx runs on", 1)[1]
        fetched, from_client = nginx_page.split("==> Inside the curl client on", 1)
        assert "<title>Welcome to nginx!</title>" in fetched
        assert "<title>Welcome to nginx!</title>" in from_client
        assert "undeploy.yml" in proc.stdout and "grove testbed down" in proc.stdout
    finally:
        testbed.playbook(
            REPO / "playbooks" / "undeploy.yml", "-e", f"descriptor={seed}", "-e", "grove_stop_timeout=2"
        )
