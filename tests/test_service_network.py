"""Issue 9's acceptance through playbooks/deploy.yml and undeploy.yml: service addresses and names
that reach every instance, on any worker. All traffic stays inside the test bed's namespaces:
every curl to 10.30.x.y runs inside an instance."""

from __future__ import annotations

import copy
import time

import pytest
from recap import total_changed
from test_deploy import DEPLOY, SEED, UNDEPLOY, instances_on, write
from testbed_support import Testbed

pytestmark = pytest.mark.testbed

RR_IP = "10.30.5.5"
CURL_ID = "clientsrvr.test.curl.test.instance.0"


def pinned(descriptor: dict, service: int, node: str, cluster: str = "") -> None:
    constraint = {"type": "direct", "node": node}
    if cluster:
        constraint["cluster"] = cluster
    descriptor["applications"][0]["microservices"][service]["constraints"] = [constraint]


def seed_with_address() -> dict:
    descriptor = copy.deepcopy(SEED)
    descriptor["applications"][0]["microservices"][1]["addresses"] = {"rr_ip": RR_IP}
    return descriptor


def curl_from(bed: Testbed, worker: str, instance: str, url: str, timeout: float = 30) -> str:
    """curl inside an instance until it answers 200 (the deadline bounds it, nothing sleeps blindly)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = bed.exec_in(worker, instance, "curl", "-fsS", "--max-time", "3", url, check=False)
        if proc.returncode == 0 or time.monotonic() > deadline:
            assert proc.returncode == 0, f"{url} from {instance}: {proc.stdout}{proc.stderr}"
            return proc.stdout
        time.sleep(0.3)


def undeploy_all(bed: Testbed, path) -> None:
    bed.playbook(UNDEPLOY, "-e", f"descriptor={path}", "-e", "grove_stop_timeout=2")


def test_the_seeds_client_reaches_nginx_by_address_and_by_name_on_another_worker(testbed: Testbed, tmp_path):
    descriptor = seed_with_address()
    pinned(descriptor, 0, "c1w1")
    pinned(descriptor, 1, "c1w2")
    looper = copy.deepcopy(descriptor["applications"][0]["microservices"][0])
    # A client as a user would write it for Oakestra: its command loops over the service address.
    looper.update(
        microservice_name="looper",
        port="",
        cmd=["sh", "-c", f"while true; do curl -s http://{RR_IP}/; sleep 2; done"],
    )
    descriptor["applications"][0]["microservices"].append(looper)
    path = write(tmp_path, descriptor)
    try:
        testbed.playbook(DEPLOY, "-e", f"descriptor={path}")
        for url in (f"http://{RR_IP}/", "http://nginx.test.clientsrvr.test/", "http://nginx/"):
            assert "Welcome to nginx!" in curl_from(testbed, "c1w1", CURL_ID, url)
        hosts = testbed.exec_in("c1w1", CURL_ID, "cat", "/etc/hosts").stdout
        assert f"{RR_IP}\tnginx.test.clientsrvr.test nginx" in hosts
        deadline = time.monotonic() + 30
        while True:
            found = {
                i["id"]: i for i in testbed.module("c1w1", "grove.edge.node_info", {})["node"]["instances"]
            }
            log = found["clientsrvr.test.looper.test.instance.0"]["log_tail"]
            if "Welcome to nginx!" in log or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "Welcome to nginx!" in log
        assert total_changed(testbed.playbook(DEPLOY, "-e", f"descriptor={path}").stdout) == 0
    finally:
        undeploy_all(testbed, path)
    # The service's address and names went with it, on every worker.
    for host in testbed.hosts:
        table = testbed.module(host, "grove.edge.service_address_info", {})
        assert [s for s in table["services"] if s["service"].startswith("clientsrvr.")] == []
        assert RR_IP not in testbed.host_shell(host, ["nft", "list", "ruleset"]).stdout
        assert testbed.host_shell(host, ["ls", "-A", "/run/grove/hosts"]).stdout.strip() == ""


def test_three_instances_on_two_workers_share_the_load_and_a_removed_one_fails_no_request(
    testbed: Testbed, tmp_path
):
    descriptor = seed_with_address()
    nginx = descriptor["applications"][0]["microservices"][1]
    nginx["port"] = ""  # no host port: three instances may share two workers
    # Small enough that spreading by free vcpus puts instances on both workers.
    for service in descriptor["applications"][0]["microservices"]:
        service["vcpus"] = 0.1
    path = write(tmp_path, descriptor)
    nginx_fqn = "clientsrvr.test.nginx.test"

    def round_of_requests(marker: str) -> int:
        url = f"http://{RR_IP}/?{marker}"
        script = f"ok=0; for i in $(seq 30); do curl -fs -o /dev/null '{url}' && ok=$((ok+1)); done; echo $ok"
        return int(testbed.exec_in(worker_of_curl, CURL_ID, "sh", "-c", script).stdout.strip())

    def hits(marker: str) -> dict[str, int]:
        counts = {}
        for instance_id, record in instances_on(testbed).items():
            if instance_id.startswith(nginx_fqn):
                log = testbed.host_shell(
                    record["worker"], ["cat", f"/var/log/grove/{instance_id}.log"]
                ).stdout
                counts[instance_id] = sum(1 for line in log.splitlines() if marker in line)
        return counts

    try:
        testbed.playbook(DEPLOY, "-e", f"descriptor={path}", extravars={"instance_counts": {nginx_fqn: 3}})
        running = instances_on(testbed)
        assert {running[f"{nginx_fqn}.instance.{n}"]["worker"] for n in range(3)} == {"c1w1", "c1w2"}
        worker_of_curl = running[CURL_ID]["worker"]
        curl_from(testbed, worker_of_curl, CURL_ID, f"http://{RR_IP}/")
        assert round_of_requests("round=a") == 30
        counts = hits("round=a")
        assert sorted(counts) == [f"{nginx_fqn}.instance.{n}" for n in range(3)]
        assert all(count > 0 for count in counts.values()), counts

        # One fewer: it leaves the table before it stops, so no request goes to it and none fail.
        testbed.playbook(DEPLOY, "-e", f"descriptor={path}", extravars={"instance_counts": {nginx_fqn: 2}})
        assert round_of_requests("round=b") == 30
        counts = hits("round=b")
        assert sorted(counts) == [f"{nginx_fqn}.instance.0", f"{nginx_fqn}.instance.1"]
        assert sum(counts.values()) == 30
    finally:
        undeploy_all(testbed, path)


def test_a_taken_service_address_fails_the_deploy_before_any_host_is_touched(testbed: Testbed, tmp_path):
    first = write(tmp_path, seed_with_address(), "first.json")
    other = seed_with_address()
    other["applications"][0]["application_name"] = "other"
    try:
        testbed.playbook(DEPLOY, "-e", f"descriptor={first}")
        proc = testbed.playbook(
            DEPLOY, "-e", f"descriptor={write(tmp_path, other, 'other.json')}", check=False
        )
        assert proc.returncode != 0
        assert "other.test.nginx.test" in proc.stdout and "clientsrvr.test.nginx.test" in proc.stdout
        assert RR_IP in proc.stdout
        assert not [i for i in instances_on(testbed) if i.startswith("other.")]
    finally:
        undeploy_all(testbed, first)


def test_a_client_in_one_cluster_reaches_a_service_whose_instances_all_run_in_the_other(
    testbed_two_clusters: Testbed, tmp_path
):
    bed = testbed_two_clusters
    descriptor = seed_with_address()
    pinned(descriptor, 0, "c1w1", "cluster1")
    pinned(descriptor, 1, "c2w2", "cluster2")
    path = write(tmp_path, descriptor)
    try:
        bed.playbook(DEPLOY, "-e", f"descriptor={path}")
        assert instances_on(bed)["clientsrvr.test.nginx.test.instance.0"]["worker"] == "c2w2"
        assert "Welcome to nginx!" in curl_from(bed, "c1w1", CURL_ID, f"http://{RR_IP}/")
        assert "Welcome to nginx!" in curl_from(bed, "c1w1", CURL_ID, "http://nginx.test.clientsrvr.test/")
    finally:
        undeploy_all(bed, path)
