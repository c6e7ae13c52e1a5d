"""Grove's network on the test bed (issue 9): the overlay between workers, service addresses and names.

The two-cluster tests are in test_network_clusters.py.

Every request to an instance (10.18.x.y) or a service address (10.30.x.y) is made from inside a
test bed host or a container on one, never from the machine itself.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from recap import recap
from testbed_support import REPO, Testbed, ensure_containerd

# The tests share the module's instances (fixture `net`) on the one-cluster test bed; `testbed`
# puts them in that test bed's group of the session.
pytestmark = [pytest.mark.testbed, pytest.mark.usefixtures("testbed")]

APP = "nettest.test"
NGINX = f"{APP}.nginx.test"
CLIENT = f"{APP}.curl.test"
IDLE = f"{APP}.idle.test"
EXTRA = f"{APP}.extra.test"
RR_IP = "10.30.18.80"
CLIENT_ID = f"{CLIENT}.instance.0"
PROBE = "nettest-names-probe"
WORKERS_YML = REPO / "playbooks" / "workers.yml"
SYNC = REPO / "playbooks" / "services.yml"
SUBNET_PLAN = REPO / "tests" / "playbooks" / "subnet_plan.yml"
HOSTS_DIR = "/run/grove/hosts"
PAGE = "Welcome to nginx!"
SERVICES = [
    {"service": NGINX, "rr_ip": RR_IP, "port": "6080:80/tcp"},
    {"service": CLIENT, "rr_ip": "", "port": "9080"},
    {"service": IDLE, "rr_ip": "", "port": "80"},
]


# --- helpers ---------------------------------------------------------------------------------


def nginx_id(number: int) -> str:
    return f"{NGINX}.instance.{number}"


def run_instance(bed: Testbed, host: str, service: str, number: int = 0) -> dict:
    if service == NGINX:
        spec = {"image": "docker.io/library/nginx:latest"}
    else:
        spec = {"image": "docker.io/curlimages/curl:latest", "cmd": ["sh", "-c", "tail -f /dev/null"]}
    args = {
        "service": service,
        "instance_number": number,
        "spec": dict(spec, memory=64, vcpus=0.5),
        "stop_timeout": 2,
        "subnet": bed.hosts[host]["grove_instance_subnet"],
    }
    result = bed.module(host, "grove.edge.instance", args)
    assert not result["failed"], result
    return result["instance"]


def curl(bed: Testbed, host: str, container: str, url: str, *extra: str):
    return bed.exec_in(
        host, container, "curl", "-sS", "--noproxy", "*", "--max-time", "5", *extra, url, check=False
    )


def wait_for_page(bed: Testbed, host: str, container: str, url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        proc = curl(bed, host, container, url)
        if proc.returncode == 0 and PAGE in proc.stdout:
            return proc.stdout
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{url} from {container} on {host}: {proc.returncode} {proc.stdout[-300:]} {proc.stderr}"
            )
        time.sleep(0.3)


def sync(bed: Testbed, tmp_path: Path, services=SERVICES, check: bool = True, **extravars):
    """Apply the services' table and hosts files on every worker (playbooks/services.yml)."""
    path = tmp_path / f"services-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(services))
    return bed.playbook(SYNC, extravars=dict(extravars, services_file=str(path)), check=check)


def requests(bed: Testbed, host: str, container: str, url: str, count: int) -> list[str]:
    """`count` requests from inside the container, one connection each; one status line per request."""
    loop = (
        f"for i in $(seq 1 {count}); do "
        f'curl -s --noproxy "*" --max-time 5 -o /dev/null -w "%{{http_code}}\\n" "{url}$i" '
        "|| echo FAILED; done"
    )
    return bed.exec_in(host, container, "sh", "-c", loop).stdout.split()


def hits(bed: Testbed, host: str, instance: str, marker: str) -> int:
    """How many requests carrying `marker` nginx logged (its access log is the task's stdout)."""
    log = bed.host_shell(host, ["cat", f"/var/log/grove/{instance}.log"]).stdout
    return sum(1 for line in log.splitlines() if marker in line and '"GET ' in line)


def service_address(bed: Testbed, host: str, service: str) -> str:
    info = bed.module(host, "grove.edge.service_address_info", {})
    return {entry["service"]: entry["rr_ip"] for entry in info["services"]}[service]


def network_traces(bed: Testbed, host: str) -> list[str]:
    """Links, routes and nftables tables of Grove's network still on a worker."""
    found = []
    links = bed.host_shell(host, ["ip", "-br", "link"]).stdout
    found += [
        line.split()[0]
        for line in links.splitlines()
        if line.split()[0].split("@")[0] in ("grove-vx", "grove-svc")
    ]
    found += bed.host_shell(host, ["ip", "route", "show", "table", "all", "proto", "118"]).stdout.splitlines()
    tables = bed.host_shell(host, ["nft", "list", "tables"]).stdout.split("\n")
    found += [t for t in tables if t.strip() in ("table ip grove_overlay", "table ip grove_services")]
    return found


@pytest.fixture(scope="module")
def net(testbed_session):
    """One cluster of two workers with the network role applied; the test app's client on c1w1 and
    one nginx on c1w2. Everything the tests add is removed at the end."""
    bed = testbed_session(1, 2)
    ensure_containerd(bed)
    instances = {
        "client": run_instance(bed, "c1w1", CLIENT),
        "nginx0": run_instance(bed, "c1w2", NGINX, 0),
    }
    yield bed, instances
    stop_probe(bed)
    for host in bed.hosts:
        for instance in bed.module(host, "grove.edge.node_info", {})["node"]["instances"]:
            if instance["service"].startswith(APP + "."):
                bed.remove_instance(host, instance["service"], instance["instance_number"])
        bed.module(host, "grove.edge.service_address", {"state": "absent"})
        bed.host_shell(host, ["rm", "-rf", HOSTS_DIR])


def start_probe(bed: Testbed) -> None:
    """A container in the client's network namespace with the client's hosts file at /etc/hosts,
    bind-mounted read-only as grove.edge.instance will mount it."""
    bed.host_shell(
        "c1w1",
        [
            "ctr", "-n", "grove", "run", "-d",
            "--with-ns", f"network:/var/run/netns/{CLIENT_ID}",
            "--mount", f"type=bind,src={HOSTS_DIR}/{CLIENT_ID},dst=/etc/hosts,options=rbind:ro",
            "docker.io/curlimages/curl:latest", PROBE, "sh", "-c", "tail -f /dev/null",
        ],
    )  # fmt: skip


def stop_probe(bed: Testbed) -> None:
    bed.host_shell("c1w1", ["ctr", "-n", "grove", "task", "delete", "--force", PROBE], check=False)
    bed.host_shell("c1w1", ["ctr", "-n", "grove", "container", "delete", PROBE], check=False)


# --- the overlay -----------------------------------------------------------------------------


def test_instances_reach_each_other_across_workers_by_their_own_addresses(net):
    bed, instances = net
    nginx, client = instances["nginx0"], instances["client"]
    assert nginx["address"].startswith("10.18.2.") and client["address"].startswith("10.18.1.")
    wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{nginx['address']}/?overlay-probe")
    # No masquerade between instance subnets: nginx sees the client's own address.
    log = bed.host_shell("c1w2", ["cat", f"/var/log/grove/{nginx_id(0)}.log"]).stdout
    sources = {line.split()[0] for line in log.splitlines() if "overlay-probe" in line}
    assert sources == {client["address"]}, log[-500:]


def test_the_vxlan_device_has_the_overlay_mtu_and_a_route_per_peer(net):
    bed, _instances = net
    link = json.loads(bed.host_shell("c1w1", ["ip", "-j", "-d", "link", "show", "grove-vx"]).stdout)[0]
    assert link["mtu"] == 1450 and link["linkinfo"]["info_data"]["id"] == 1818
    routes = bed.host_shell("c1w1", ["ip", "route", "show", "proto", "118"]).stdout
    assert "10.18.2.0/24 via 10.18.2.0 dev grove-vx onlink" in routes


# --- service addresses and names -------------------------------------------------------------


def test_the_service_address_reaches_nginx_on_another_worker_from_instances_and_workers(net, tmp_path):
    bed, _instances = net
    sync(bed, tmp_path)
    assert PAGE in wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{RR_IP}/")
    # Processes on the workers themselves, on the backend's worker and on the other one.
    for host in ("c1w1", "c1w2"):
        proc = bed.host_shell(
            host, ["curl", "-sS", "--noproxy", "*", "--max-time", "5", f"http://{RR_IP}/"], check=False
        )
        assert PAGE in proc.stdout, (host, proc.stderr)
    # The allocated address of the client service is in every worker's table.
    allocated = service_address(bed, "c1w2", CLIENT)
    assert allocated.startswith("10.30.") and allocated == service_address(bed, "c1w1", CLIENT)
    again = sync(bed, tmp_path)
    assert all(host["changed"] == 0 for name, host in recap(again.stdout).items() if name != "localhost")


def test_closed_ports_unknown_addresses_and_services_without_instances_are_refused_at_once(net, tmp_path):
    bed, _instances = net
    sync(bed, tmp_path)
    idle = service_address(bed, "c1w1", IDLE)
    for url in (f"http://{RR_IP}:81/", f"http://{idle}/", "http://10.30.250.250/"):
        proc = curl(bed, "c1w1", CLIENT_ID, url)
        # 7: connection refused (the table's TCP reset); a blackhole would time out (28).
        assert proc.returncode == 7, (url, proc.returncode, proc.stderr)


def test_names_resolve_inside_the_instance_and_follow_the_services(net, tmp_path):
    bed, _instances = net
    sync(bed, tmp_path)
    start_probe(bed)
    try:
        hosts = bed.exec_in("c1w1", PROBE, "cat", "/etc/hosts").stdout
        assert f"{RR_IP}\tnginx.test.nettest.test nginx" in hosts
        assert "127.0.0.1\tlocalhost" in hosts
        for name in ("nginx.test.nettest.test", "nginx"):
            assert PAGE in wait_for_page(bed, "c1w1", PROBE, f"http://{name}/")
        # A service that comes shows up in the same (bind-mounted) file; one that goes, leaves.
        sync(bed, tmp_path, services=[*SERVICES, {"service": EXTRA, "rr_ip": "10.30.18.81", "port": "80"}])
        assert (
            "10.30.18.81\textra.test.nettest.test extra"
            in bed.exec_in("c1w1", PROBE, "cat", "/etc/hosts").stdout
        )
        sync(bed, tmp_path, removed=[EXTRA])
        assert "extra" not in bed.exec_in("c1w1", PROBE, "cat", "/etc/hosts").stdout
        assert curl(bed, "c1w1", PROBE, "http://extra/").returncode != 0  # no such name any more
    finally:
        stop_probe(bed)


def test_three_instances_share_the_load_and_one_that_leaves_gets_nothing(net, tmp_path):
    bed, instances = net
    # Instance 1 shares the client's bridge: its replies must come back through the worker (hairpin).
    more = {1: run_instance(bed, "c1w1", NGINX, 1), 2: run_instance(bed, "c1w2", NGINX, 2)}
    where = {0: "c1w2", 1: "c1w1", 2: "c1w2"}
    for instance in [instances["nginx0"], *more.values()]:
        wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{instance['address']}/")
    sync(bed, tmp_path)
    statuses = requests(bed, "c1w1", CLIENT_ID, f"http://{RR_IP}/?round=a", 30)
    assert statuses == ["200"] * 30
    counts = {n: hits(bed, where[n], nginx_id(n), "round=a") for n in where}
    assert all(count > 0 for count in counts.values()) and sum(counts.values()) == 30, counts

    # Instance 1 is about to go: the tables drop it first, so no new connection reaches it.
    sync(bed, tmp_path, leaving=[nginx_id(1)])
    statuses = requests(bed, "c1w1", CLIENT_ID, f"http://{RR_IP}/?round=b", 30)
    assert statuses == ["200"] * 30
    counts = {n: hits(bed, where[n], nginx_id(n), "round=b") for n in where}
    assert counts[1] == 0 and counts[0] > 0 and counts[2] > 0 and counts[0] + counts[2] == 30, counts
    bed.remove_instance("c1w1", NGINX, 1)
    sync(bed, tmp_path)
    table = bed.host_shell("c1w1", ["nft", "list", "table", "ip", "grove_services"]).stdout
    assert not re.search(re.escape(more[1]["address"]) + r"(?![0-9])", table), table
    assert requests(bed, "c1w1", CLIENT_ID, f"http://{RR_IP}/?round=c", 10) == ["200"] * 10


def test_hostile_service_names_are_refused_and_never_templated(net, tmp_path):
    bed, _instances = net
    marker = tmp_path / "templated"
    hostile = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    before = bed.host_shell("c1w1", ["nft", "list", "table", "ip", "grove_services"], check=False).stdout
    proc = sync(bed, tmp_path, services=[{"service": hostile, "rr_ip": "", "port": "80"}], check=False)
    assert proc.returncode != 0
    assert "services[0].service" in proc.stdout and "is not a fully qualified service name" in proc.stdout
    assert not marker.exists()
    assert (
        bed.host_shell("c1w1", ["nft", "list", "table", "ip", "grove_services"], check=False).stdout == before
    )


def test_a_fixed_rr_ip_that_another_service_holds_is_refused_naming_both(net, tmp_path):
    bed, _instances = net
    sync(bed, tmp_path)
    taken = [{"service": f"{APP}.thief.test", "rr_ip": RR_IP, "port": "80"}]
    proc = sync(bed, tmp_path, services=taken, check=False)
    assert proc.returncode != 0
    assert (
        f"rr_ip {RR_IP} of service {APP}.thief.test is already the round-robin address of service {NGINX}"
        in (proc.stdout)
    )


# --- removal and re-runs ---------------------------------------------------------------------


def test_removal_leaves_nothing_and_a_second_run_of_the_role_changes_nothing(net, tmp_path):
    bed, _instances = net
    sync(bed, tmp_path, table_state="absent")
    bed.playbook(WORKERS_YML, "-e", "grove_network_state=absent")
    for host in bed.hosts:
        assert network_traces(bed, host) == [], host
    bed.playbook(WORKERS_YML)
    for host in bed.hosts:
        assert "grove-vx" in network_traces(bed, host)
    again = bed.playbook(WORKERS_YML)
    assert {name: counts["changed"] for name, counts in recap(again.stdout).items()} == dict.fromkeys(
        bed.hosts, 0
    )
    # The overlay came back in working order.
    wait_for_page(bed, "c1w1", CLIENT_ID, f"http://{net[1]['nginx0']['address']}/")
