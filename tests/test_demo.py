"""`make demo`'s script: the seed's walkthrough over the API on the test bed, shown working."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from testbed_support import REPO, Testbed, ansible_env

pytestmark = pytest.mark.testbed


def stop(pid_file) -> None:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def test_demo_deploys_the_seed_over_the_api_and_shows_nginx_from_outside_and_from_the_client(
    testbed: Testbed, tmp_path
):
    seed = str(REPO / "examples" / "clientsrvr.json")
    # A proxy that answers nothing, on loopback: anything that wrongly sends test bed or API traffic
    # to a proxy from the environment fails here instead of carrying it off the machine.
    dead_proxy = "http://127.0.0.1:9"
    env = dict(
        ansible_env(),
        GROVE_DEMO_DIR=str(tmp_path),
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
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        out = proc.stdout
        assert "Swagger UI: http://127.0.0.1:10000/api/docs" in out
        assert "clientsrvr.test.nginx.test instance 0: RUNNING on cluster1/" in out
        assert "clientsrvr.test.curl.test instance 0: RUNNING on cluster1/" in out
        after_fetch = out.split("==> nginx answers at", 1)[1]
        fetched, from_client = after_fetch.split("==> Inside the curl client on", 1)
        from_client, by_service = from_client.split(
            "==> Inside the curl client: nginx at its service address", 1
        )
        assert "<title>Welcome to nginx!</title>" in fetched
        assert "<title>Welcome to nginx!</title>" in from_client
        # The seed's last step: by the service's round-robin address and by its name.
        assert by_service.count("<title>Welcome to nginx!</title>") == 2, by_service
        # The stop instructions work as printed: they name the API's pid and the test bed.
        assert f"kill {(tmp_path / 'api.pid').read_text().strip()}" in out
        assert "grove testbed down" in out
        # The API outlives the script, for the Swagger UI.
        os.kill(int((tmp_path / "api.pid").read_text()), 0)
    finally:
        stop(tmp_path / "api.pid")
        testbed.playbook(
            REPO / "playbooks" / "undeploy.yml", "-e", f"descriptor={seed}", "-e", "grove_stop_timeout=2"
        )
