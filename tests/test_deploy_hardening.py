"""Issue 7 on the test bed: secrets stay secret, privileged needs the operator, a running instance
whose new spec no longer fits moves, and the role's worker settings reach every module."""

from __future__ import annotations

import copy
import json

import ansible_runner
import pytest
from recap import changed_tasks, recap, total_changed
from test_deploy import DEPLOY, SEED, UNDEPLOY, instances_on, undeploy, write
from testbed_support import REPO, Testbed, ansible_env

pytestmark = pytest.mark.testbed

SECRET = "s3cr3t-Pa55w0rd-7f1d"  # noqa: S105 - a marker the test greps every output for
OTHER_SECRET = "an0ther-Pa55w0rd-9c2e"  # noqa: S105
CURL_ID = "clientsrvr.test.curl.test.instance.0"


def with_secret(secret: str) -> dict:
    descriptor = copy.deepcopy(SEED)
    curl = descriptor["applications"][0]["microservices"][0]
    curl["environment"] = [f"PASSWORD={secret}", "GREETING=hello {{ lookup('pipe','id') }}"]
    descriptor["applications"][0]["microservices"] = [curl]
    return descriptor


def files_containing(root, needle: str) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def test_environment_values_reach_the_container_and_nothing_else(testbed: Testbed, tmp_path):
    descriptor = write(tmp_path, with_secret(SECRET))
    runner_dir = tmp_path / "runner"
    runner_dir.mkdir()
    try:
        # The API's path: ansible-runner keeps every event of the run on disk.
        run = ansible_runner.run(
            private_data_dir=str(runner_dir),
            playbook=str(DEPLOY),
            inventory=str(testbed.inventory),
            extravars={"descriptor": str(descriptor)},
            envvars={k: v for k, v in ansible_env().items() if k.startswith("ANSIBLE_") or k == "PATH"},
            quiet=True,
        )
        assert run.rc == 0, run.stdout.read()
        assert files_containing(runner_dir, SECRET) == []
        worker = instances_on(testbed)[CURL_ID]["worker"]
        echoed = testbed.exec_in(worker, CURL_ID, "sh", "-c", 'echo "$PASSWORD|$GREETING"').stdout.strip()
        assert echoed == SECRET + "|hello {{ lookup('pipe','id') }}"
        labels = json.loads(
            testbed.host_shell(worker, ["ctr", "-n", "grove", "containers", "info", CURL_ID]).stdout
        )
        assert SECRET not in json.dumps(labels["Labels"])
        assert labels["Labels"]["grove.env-digest"]
        # The file containerd read the environment from is gone again.
        assert testbed.host_shell(worker, ["ls", "-A", "/run/grove/env"]).stdout.strip() == ""

        # A changed secret recreates the instance, and the most verbose diff shows neither value.
        changed = write(tmp_path, with_secret(OTHER_SECRET), "changed.json")
        proc = testbed.playbook(DEPLOY, "-vvv", "--diff", "-e", f"descriptor={changed}")
        # The instance is recreated; its new address is the only change to the service tables.
        assert changed_tasks(proc.stdout) == {
            host: {"Ensure the service address table"} for host in testbed.hosts if host != worker
        } | {worker: {"Start each instance placed on this worker", "Ensure the service address table"}}
        assert recap(proc.stdout)[worker]["changed"] == 2
        assert SECRET not in proc.stdout + proc.stderr
        assert OTHER_SECRET not in proc.stdout + proc.stderr
        assert '"PASSWORD=********"' in proc.stdout
        echoed = testbed.exec_in(worker, CURL_ID, "sh", "-c", 'echo "$PASSWORD"').stdout.strip()
        assert echoed == OTHER_SECRET
        assert total_changed(testbed.playbook(DEPLOY, "-e", f"descriptor={changed}").stdout) == 0
    finally:
        undeploy(testbed, "-e", f"descriptor={descriptor}")


def test_privileged_needs_the_operator_and_unhonoured_fields_are_warned(testbed: Testbed, tmp_path):
    descriptor = copy.deepcopy(SEED)
    curl = descriptor["applications"][0]["microservices"][0]
    curl.update({"privileged": True, "vtpus": 1})
    descriptor["applications"][0]["microservices"] = [curl]
    path = write(tmp_path, descriptor)
    refused = testbed.playbook(DEPLOY, "-e", f"descriptor={path}", check=False)
    assert refused.returncode != 0
    assert (
        "applications[0].microservices[0].privileged: privileged instances are not allowed here"
        in refused.stdout
    )
    assert set(recap(refused.stdout)) == {"localhost"}
    try:
        allowed = testbed.playbook(DEPLOY, "-e", f"descriptor={path}", "-e", "grove_allow_privileged=true")
        assert "applications[0].microservices[0].vtpus: is not honoured" in allowed.stdout + allowed.stderr
        worker = instances_on(testbed)[CURL_ID]["worker"]
        info = json.loads(
            testbed.host_shell(worker, ["ctr", "-n", "grove", "containers", "info", CURL_ID]).stdout
        )
        assert "CAP_SYS_ADMIN" in info["Spec"]["process"]["capabilities"]["bounding"]
    finally:
        undeploy(testbed, "-e", f"descriptor={path}")


def test_an_instance_that_outgrows_its_worker_moves_and_starts_before_the_old_copy_stops(
    testbed: Testbed, tmp_path
):
    vcpus = testbed.module("c1w1", "grove.edge.node_info", {})["node"]["vcpus"]
    descriptor = copy.deepcopy(SEED)
    curl, nginx = descriptor["applications"][0]["microservices"]
    for service in (curl, nginx):
        service["vcpus"] = vcpus / 2
        service["constraints"] = [{"type": "direct", "node": "c1w1"}]
    first = write(tmp_path, descriptor)
    nginx_id = "clientsrvr.test.nginx.test.instance.0"
    try:
        testbed.playbook(DEPLOY, "-e", f"descriptor={first}")
        assert instances_on(testbed)[nginx_id]["worker"] == "c1w1"
        # nginx now wants the whole worker, which curl shares: it must move, not overcommit c1w1.
        nginx["vcpus"] = vcpus
        nginx["constraints"] = [{"type": "direct", "node": "c1w1;c1w2"}]
        moved = testbed.playbook(DEPLOY, "-e", f"descriptor={write(tmp_path, descriptor, 'moved.json')}")
        assert f"{nginx_id} -> cluster1/c1w2" in moved.stdout
        # Start on the new worker came before removal from the old one.
        assert moved.stdout.index("TASK [Start each instance") < moved.stdout.index(
            "TASK [Remove the instances"
        )
        running = instances_on(testbed)
        assert (running[nginx_id]["worker"], running[nginx_id]["resources"]["vcpus"]) == ("c1w2", vcpus)
        on_c1w1 = testbed.module("c1w1", "grove.edge.node_info", {})["node"]["instances"]
        assert [i["id"] for i in on_c1w1 if i["id"].startswith("clientsrvr.")] == [CURL_ID]
    finally:
        undeploy(testbed, "-e", f"descriptor={first}")


def test_a_non_default_containerd_socket_reaches_every_module(testbed: Testbed, tmp_path):
    socket = "/run/containerd/grove-alt.sock"
    settings = ("-e", f"containerd_address={socket}")
    path = write(tmp_path, SEED)
    try:
        testbed.playbook(REPO / "playbooks" / "workers.yml", *settings)
        testbed.playbook(DEPLOY, "-e", f"descriptor={path}", *settings)
        on_alt = testbed.module("c1w1", "grove.edge.node_info", {"containerd_address": socket})["node"]
        on_default = testbed.module("c1w1", "grove.edge.node_info", {})["node"]
        assert on_alt["containerd_error"] == "" and on_alt["runtimes"] == ["container"]
        assert (
            "cannot connect to containerd at /run/containerd/containerd.sock"
            in on_default["containerd_error"]
        )
        seen = set()
        for host in testbed.hosts:
            node = testbed.module(host, "grove.edge.node_info", {"containerd_address": socket})["node"]
            seen |= {i["id"] for i in node["instances"]}
        assert {CURL_ID, "clientsrvr.test.nginx.test.instance.0"} <= seen
        assert total_changed(testbed.playbook(DEPLOY, "-e", f"descriptor={path}", *settings).stdout) == 0
        testbed.playbook(UNDEPLOY, "-e", f"descriptor={path}", "-e", "grove_stop_timeout=2", *settings)
    finally:
        # Back to the default socket for the tests that follow.
        testbed.playbook(REPO / "playbooks" / "workers.yml")
    assert not [i for i in instances_on(testbed) if i.startswith("clientsrvr.")]
