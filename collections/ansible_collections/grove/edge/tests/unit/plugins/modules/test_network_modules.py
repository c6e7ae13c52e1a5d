"""The networking modules, run as Ansible runs them (module file + arguments file).

overlay and service_address run inside a network namespace of their own (`unshare --net`) with a
veth pair as the underlay, so they change a real kernel's links, routes and nftables tables
without anything outside the namespace seeing it; the namespace vanishes with the test.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from ansible_collections.grove.edge.plugins.modules import (
    instance_subnet,
    overlay,
    service_address,
    service_address_info,
    service_names,
)
from test_schedule_module import _compare, run_module

HOSTILE = "{{ lookup('pipe','id') }}"
MODULES = [instance_subnet, overlay, service_address, service_address_info, service_names]
needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "ip", "bridge", "nft")),
    reason="needs root, unshare, iproute2 and nft",
)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_documentation_matches_the_argument_spec_and_examples(module):
    documentation = yaml.safe_load(module.DOCUMENTATION)
    name = module.__name__.rsplit(".", 1)[-1]
    assert documentation["module"] == name
    _compare(documentation["options"], module.ARGUMENT_SPEC, "options")
    assert yaml.safe_load(module.RETURN)
    for task in yaml.safe_load(module.EXAMPLES):
        assert set(task["grove.edge." + name] or {}) <= set(documentation["options"]), task["name"]


# --- running modules in a private network namespace ------------------------------------------

DRIVER = textwrap.dedent(
    """\
    import json, subprocess, sys
    spec = json.load(open(sys.argv[1]))
    for command in spec["setup"]:
        subprocess.run(command, check=True)
    results = []
    for index, step in enumerate(spec["steps"]):
        if "module" in step:
            args_file = "%s.%d.json" % (sys.argv[1], index)
            with open(args_file, "w") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": step["args"]}, handle)
            proc = subprocess.run([sys.executable, step["module"], args_file], capture_output=True, text=True)
            try:
                results.append(json.loads(proc.stdout))
            except ValueError:
                results.append({"failed": True, "msg": "no JSON", "stdout": proc.stdout,
                                "stderr": proc.stderr})
        else:
            proc = subprocess.run(step["command"], capture_output=True, text=True)
            results.append({"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr})
    print(json.dumps(results))
    """
)
UNDERLAY = [
    ["ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1"],
    ["ip", "addr", "add", "10.99.1.11/16", "dev", "u0"],
    ["ip", "link", "set", "u0", "up"],
    ["ip", "link", "set", "u1", "up"],
]


def step(module, args=None):
    return {"module": module.__file__, "args": dict(args or {})}


def command(*argv):
    return {"command": list(argv)}


def in_netns(tmp_path, steps, setup=None):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"setup": UNDERLAY if setup is None else setup, "steps": steps}))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, str(driver), str(spec)],
        # The collection is importable from the installed environment: no PYTHONPATH needed.
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


PEERS = [
    {"name": "c1w2", "subnet": "10.18.2.0/24", "underlay": "10.99.1.12"},
    {"name": "c2w1", "subnet": "10.18.3.0/24", "underlay": "10.99.2.11"},
]
OVERLAY = {"subnet": "10.18.1.0/24", "local": "10.99.1.11", "peers": PEERS}
SHOW = [
    command("ip", "-d", "link", "show", "grove-vx"),
    command("ip", "route", "show", "table", "all"),
    command("ip", "neigh", "show", "dev", "grove-vx"),
    command("bridge", "fdb", "show", "dev", "grove-vx"),
    command("nft", "list", "ruleset"),
]


@needs_netns
def test_overlay_check_mode_apply_rerun_and_removal(tmp_path):
    results = in_netns(
        tmp_path,
        [
            step(overlay, {**OVERLAY, "_ansible_check_mode": True, "_ansible_diff": True}),
            command("ip", "link", "show", "grove-vx"),
            step(overlay, OVERLAY),
            step(overlay, OVERLAY),
            *SHOW,
            step(overlay, {"state": "absent"}),
            step(overlay, {"state": "absent"}),
            command("ip", "-br", "link"),
            command("ip", "route", "show", "table", "all"),
            command("nft", "list", "ruleset"),
        ],
    )
    check, shown, first, second, link, routes, neigh, fdb, ruleset, removed, removed_again, links_after = (
        results[:12]
    )
    routes_after, ruleset_after = results[12:]
    assert check["changed"] is True and "add link grove-vx (vxlan)" in check["actions"]
    assert check["diff"]["before"]["links"] == {} and "grove-vx" in check["diff"]["after"]["links"]
    assert shown["rc"] != 0, "check mode must not create the device"
    assert first["changed"] is True and "failed" not in first, first
    assert first["vtep"] == {"address": "10.18.1.0", "mac": "02:47:0a:12:01:00"} and first["mtu"] == 1450
    assert second["changed"] is False, second["actions"]
    assert "vxlan id 1818 local 10.99.1.11" in link["stdout"] and "mtu 1450" in link["stdout"]
    assert "10.18.2.0/24 via 10.18.2.0 dev grove-vx proto 118 onlink" in routes["stdout"]
    assert "unreachable 10.18.0.0/16 proto 118 metric 4280" in routes["stdout"]
    assert "10.30.0.0/16 dev grove-svc proto 118" in routes["stdout"]
    assert "10.18.3.0 lladdr 02:47:0a:12:03:00 PERMANENT" in neigh["stdout"]
    assert "02:47:0a:12:02:00 dst 10.99.1.12 self permanent" in fdb["stdout"]
    assert "table ip grove_overlay" in ruleset["stdout"]
    assert removed["changed"] is True and removed_again["changed"] is False
    assert "grove-vx" not in links_after["stdout"] and "grove-svc" not in links_after["stdout"]
    assert "proto 118" not in routes_after["stdout"]
    assert "grove_overlay" not in ruleset_after["stdout"]


@needs_netns
def test_overlay_applies_only_the_difference_when_peers_and_mode_change(tmp_path):
    fewer = {**OVERLAY, "peers": PEERS[:1]}
    results = in_netns(
        tmp_path,
        [
            step(overlay, OVERLAY),
            step(overlay, fewer),
            step(overlay, {**fewer, "mode": "routes"}),
            command("ip", "route", "show", "proto", "118"),
            command("ip", "link", "show", "grove-vx"),
            step(overlay, {**fewer, "mode": "routes"}),
        ],
    )
    _first, fewer_result, routes_mode, routes, link, again = results
    assert fewer_result["actions"] == [
        "remove route 10.18.3.0/24 via 10.18.3.0 dev grove-vx onlink",
        "remove neighbour 10.18.3.0 on grove-vx",
        "remove fdb entry 02:47:0a:12:03:00 dst 10.99.2.11 on grove-vx",
    ]
    assert routes_mode["changed"] is True and "remove link grove-vx" in routes_mode["actions"]
    assert "10.18.2.0/24 via 10.99.1.12 dev u0" in routes["stdout"]
    assert link["rc"] != 0
    assert again["changed"] is False


@needs_netns
def test_overlay_refuses_what_it_cannot_do_and_changes_nothing(tmp_path):
    results = in_netns(
        tmp_path,
        [
            step(overlay, {**OVERLAY, "local": "10.99.1.99"}),
            step(overlay, {**OVERLAY, "peers": [{**PEERS[0], "underlay": HOSTILE}]}),
            step(overlay, {"subnet": "10.18.1.0/24"}),
            command("ip", "-br", "link"),
            command("nft", "list", "ruleset"),
        ],
    )
    not_mine, hostile, no_local, links, ruleset = results
    assert not_mine["failed"] and "local 10.99.1.99 is not an address of this worker" in not_mine["msg"]
    assert hostile["failed"] and "peers[0].underlay" in hostile["msg"]
    assert no_local["failed"] and "local required" in no_local["msg"]
    assert "grove" not in links["stdout"] and ruleset["stdout"].strip() == ""


SERVICES = [
    {
        "service": "clientsrvr.test.nginx.test",
        "rr_ip": "10.30.1.2",
        "ports": ["80/tcp"],
        "backends": ["10.18.2.2", "10.18.1.2"],
    },
    {"service": "clientsrvr.test.curl.test", "rr_ip": "10.30.0.9", "ports": [], "backends": []},
]


@needs_netns
def test_service_address_apply_rerun_info_check_and_removal(tmp_path):
    moved = [dict(SERVICES[0], backends=["10.18.1.2"]), SERVICES[1]]
    results = in_netns(
        tmp_path,
        [
            step(service_address, {"services": SERVICES, "_ansible_check_mode": True}),
            command("nft", "list", "tables"),
            step(service_address, {"services": SERVICES}),
            step(service_address, {"services": list(reversed(SERVICES))}),
            step(service_address_info),
            step(service_address, {"services": moved, "_ansible_diff": True}),
            command("nft", "list", "table", "ip", "grove_services"),
            step(service_address, {"state": "absent"}),
            step(service_address, {"state": "absent"}),
            step(service_address_info),
        ],
    )
    check, tables, applied, again, info, changed, listing, removed, removed_again, info_after = results
    assert check["changed"] is True and tables["stdout"].strip() == ""
    assert applied["changed"] is True and again["changed"] is False
    assert info["exists"] is True
    assert info["services"] == [
        {"service": "clientsrvr.test.curl.test", "rr_ip": "10.30.0.9", "ports": [], "backends": []},
        {
            "service": "clientsrvr.test.nginx.test",
            "rr_ip": "10.30.1.2",
            "ports": ["80/tcp"],
            "backends": ["10.18.1.2", "10.18.2.2"],
        },
    ]
    assert changed["changed"] is True
    assert "numgen" in changed["diff"]["before"] and "numgen" not in changed["diff"]["after"]
    assert "tcp dport 80 dnat to 10.18.1.2" in listing["stdout"]
    assert removed["changed"] is True and removed_again["changed"] is False
    assert info_after == dict(info_after, exists=False, services=[])


@needs_netns
@pytest.mark.parametrize(
    "services, reason",
    [
        ([dict(SERVICES[0], service=HOSTILE)], "services[0].service"),
        (
            [dict(SERVICES[0], backends=["192.168.0.1"])],
            "services[0].backends[0]: 192.168.0.1 is not an instance",
        ),
        ([SERVICES[0], dict(SERVICES[1], rr_ip="10.30.1.2")], "already the round-robin address of service"),
        ([dict(SERVICES[0], rr_ip="10.18.0.5")], "outside the service network"),
    ],
)
def test_service_address_refuses_bad_services_and_touches_nothing(tmp_path, services, reason):
    result, tables = in_netns(
        tmp_path, [step(service_address, {"services": services}), command("nft", "list", "tables")]
    )
    assert result["failed"] and reason in result["msg"], result
    assert tables["stdout"].strip() == ""


# --- service_names and instance_subnet: plain files -------------------------------------------

NAMES_SERVICES = [
    {"service": "clientsrvr.test.nginx.test", "rr_ip": "10.30.1.2", "ports": ["80/tcp"], "backends": []},
    {"service": "clientsrvr.test.curl.test", "rr_ip": "10.30.0.9"},
    {"service": "other.ns.web.ns", "rr_ip": "10.30.3.3"},
]
INSTANCES = [
    {
        "id": "clientsrvr.test.curl.test.instance.0",
        "service": "clientsrvr.test.curl.test",
        "status": "RUNNING",
    },
    {"id": "other.ns.web.ns.instance.0", "service": "other.ns.web.ns"},
]


def test_service_names_write_rerun_rewrite_in_place_and_remove(tmp_path):
    hosts_dir = tmp_path / "hosts"
    args = {"services": NAMES_SERVICES, "instances": INSTANCES, "hosts_dir": str(hosts_dir)}
    check = run_module(tmp_path, module_file=service_names.__file__, _ansible_check_mode=True, **args)
    assert check["changed"] is True and not hosts_dir.exists()
    first = run_module(tmp_path, module_file=service_names.__file__, **args)
    curl = hosts_dir / "clientsrvr.test.curl.test.instance.0"
    assert first["changed"] is True and sorted(first["files"]) == sorted(str(p) for p in hosts_dir.iterdir())
    assert "10.30.1.2\tnginx.test.clientsrvr.test nginx\n" in curl.read_text()
    assert "web" not in curl.read_text()
    assert "10.30.3.3\tweb.ns.other.ns web\n" in (hosts_dir / "other.ns.web.ns.instance.0").read_text()
    inode = curl.stat().st_ino
    assert run_module(tmp_path, module_file=service_names.__file__, **args)["changed"] is False
    fewer = {**args, "services": NAMES_SERVICES[1:], "_ansible_diff": True}
    rewritten = run_module(tmp_path, module_file=service_names.__file__, **fewer)
    assert rewritten["files"] == [str(curl)]
    assert (
        "nginx" in rewritten["diff"]["before"][str(curl)]
        and "nginx" not in rewritten["diff"]["after"][str(curl)]
    )
    assert curl.stat().st_ino == inode and "nginx" not in curl.read_text()
    removed = run_module(tmp_path, module_file=service_names.__file__, **{**args, "state": "absent"})
    assert removed["changed"] is True and list(hosts_dir.iterdir()) == []


@pytest.mark.parametrize(
    "instances, reason",
    [
        ([{"id": "../../etc/passwd", "service": "a.b.c.d"}], "instances[0].id"),
        ([{"id": "x.instance.0", "service": HOSTILE}], "instances[0].service"),
        ([{"service": "a.b.c.d"}], "instances[0].id"),
    ],
)
def test_service_names_refuse_bad_instances_and_write_nothing(tmp_path, instances, reason):
    hosts_dir = tmp_path / "hosts"
    result = run_module(
        tmp_path,
        module_file=service_names.__file__,
        services=NAMES_SERVICES,
        instances=instances,
        hosts_dir=str(hosts_dir),
    )
    assert result["failed"] and reason in result["msg"]
    assert not hosts_dir.exists()
    assert not Path(tmp_path.parent / "etc").exists()


def test_service_names_refuse_hostile_services(tmp_path):
    hosts_dir = tmp_path / "hosts"
    services = [{"service": "a.b.c.d", "rr_ip": "10.30.0.1\n6.6.6.6 evil"}]
    result = run_module(
        tmp_path,
        module_file=service_names.__file__,
        services=services,
        instances=INSTANCES,
        hosts_dir=str(hosts_dir),
    )
    assert result["failed"] and "services[0].rr_ip" in result["msg"]
    assert not hosts_dir.exists()


def test_instance_subnet_reads_records_and_guards_the_subnet(tmp_path):
    path = tmp_path / "etc" / "network.json"

    def call(**args):
        return run_module(tmp_path, module_file=instance_subnet.__file__, path=str(path), **args)

    assert call() == dict(call(), changed=False, subnet="", record={})
    allocations = {"c1w1": "10.18.1.0/24", "c1w2": "10.18.2.0/24"}
    check = call(subnet="10.18.1.0/24", allocations=allocations, _ansible_check_mode=True)
    assert check["changed"] is True and not path.exists()
    first = call(subnet="10.18.1.0/24", allocations=allocations)
    assert first["changed"] is True and json.loads(path.read_text())["allocations"] == allocations
    assert call(subnet="10.18.1.0/24", allocations=allocations)["changed"] is False
    assert call()["subnet"] == "10.18.1.0/24"
    moved = call(subnet="10.18.5.0/24", allocations=allocations)
    assert moved["failed"] and "is 10.18.1.0/24, not 10.18.5.0/24" in moved["msg"]
    assert call(subnet="10.18.5.0/24", allocations=allocations, force=True)["changed"] is True
    hostile = call(subnet=HOSTILE)
    assert hostile["failed"] and "not an IPv4 network" in hostile["msg"]
    path.write_text("{broken")
    damaged = call()
    assert damaged["failed"] and str(path) in damaged["msg"]
