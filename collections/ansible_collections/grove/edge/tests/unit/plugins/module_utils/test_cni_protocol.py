"""The CNI protocol as module_utils/_cni.py speaks it, against real plugin executables.

The plugins here are small Python programs that record how they were called (environment and
stdin) and answer like CNI plugins do, so the chaining, ordering, caching and error handling are
exercised through real process execution.
"""

import base64
import json
import os
import subprocess
import sys
import textwrap

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _cni
from ansible_collections.grove.edge.plugins.module_utils._cni import Attachment, Cni, CniError

PLUGIN = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    config = json.load(sys.stdin)
    command = os.environ["CNI_COMMAND"]
    with open(config["log"], "a") as log:
        log.write(json.dumps({{"plugin": config["type"], "env": {{k: v for k, v in os.environ.items()
                                                             if k.startswith("CNI_")}},
                              "config": config}}) + "\\n")
    if config.get("fail") == command:
        print(json.dumps({{"code": 11, "msg": "boom from " + config["type"], "details": "the details"}}))
        sys.exit(1)
    if command == "ADD":
        result = config.get("prevResult") or {{"interfaces": [], "ips": []}}
        result["interfaces"].append({{"name": config["type"]}})
        print(json.dumps(result))
    """
)


def runner(argv, data=None, env=None):
    proc = subprocess.run(
        argv, input=data, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def plugins(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("first", "second", "third"):
        path = bin_dir / name
        path.write_text(PLUGIN.format(python=sys.executable))
        path.chmod(0o755)
    return bin_dir


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "calls.jsonl"

    def read():
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    read.path = str(path)
    return read


def conflist(log, **extra):
    plugins = [
        {"type": "first", "log": log.path},
        {"type": "second", "log": log.path, "capabilities": {"portMappings": True}},
        {"type": "third", "log": log.path, "capabilities": {"bandwidth": True, "other": False}},
    ]
    for plugin in plugins:
        plugin.update(extra.get(plugin["type"], {}))
    return {"cniVersion": "1.0.0", "name": "testnet", "plugins": plugins}


CAPS = {"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}], "other": 1}


def test_add_runs_the_chain_in_order_passing_each_result_on(tmp_path, plugins, log):
    cni = Cni(runner, str(plugins), str(tmp_path / "state"))
    result = cni.add(conflist(log), Attachment("box.1", "/var/run/netns/box.1"), CAPS)
    assert [i["name"] for i in result["interfaces"]] == ["first", "second", "third"]
    calls = log()
    assert [c["plugin"] for c in calls] == ["first", "second", "third"]
    for call in calls:
        assert call["env"]["CNI_COMMAND"] == "ADD"
        assert call["env"]["CNI_CONTAINERID"] == "box.1"
        assert call["env"]["CNI_NETNS"] == "/var/run/netns/box.1"
        assert call["env"]["CNI_IFNAME"] == "eth0"
        assert call["env"]["CNI_PATH"] == str(plugins)
        assert call["config"]["name"] == "testnet"
        assert call["config"]["cniVersion"] == "1.0.0"
    assert "prevResult" not in calls[0]["config"]
    assert [i["name"] for i in calls[2]["config"]["prevResult"]["interfaces"]] == ["first", "second"]
    # runtimeConfig only carries the capabilities a plugin declared (and enabled).
    assert "runtimeConfig" not in calls[0]["config"]
    assert calls[1]["config"]["runtimeConfig"] == {"portMappings": CAPS["portMappings"]}
    assert "runtimeConfig" not in calls[2]["config"]


def test_add_caches_result_and_exact_config_like_libcni(tmp_path, plugins, log):
    cni = Cni(runner, str(plugins), str(tmp_path / "state"))
    network = conflist(log)
    result = cni.add(network, Attachment("box.1", "/n"), CAPS)
    path = tmp_path / "state" / "results" / "testnet-box.1-eth0"
    raw = json.loads(path.read_text())
    assert raw["kind"] == "cniCacheV1"
    assert raw["containerId"] == "box.1"
    assert raw["ifName"] == "eth0"
    assert raw["networkName"] == "testnet"
    assert json.loads(base64.b64decode(raw["config"])) == network
    assert raw["capabilityArgs"] == CAPS
    assert raw["result"] == result
    entry = cni.cached("testnet", "box.1")
    assert entry["config"] == network
    assert cni.cached("testnet", "other") is None


def test_del_replays_the_cached_add_in_reverse_and_drops_the_cache(tmp_path, plugins, log):
    cni = Cni(runner, str(plugins), str(tmp_path / "state"))
    result = cni.add(conflist(log), Attachment("box.1", "/n"), CAPS)
    entry = cni.cached("testnet", "box.1")
    cni.delete_cached(entry, "box.1", "")
    deletes = [c for c in log() if c["env"]["CNI_COMMAND"] == "DEL"]
    assert [c["plugin"] for c in deletes] == ["third", "second", "first"]
    for call in deletes:
        assert call["config"]["prevResult"] == result
        assert call["env"]["CNI_NETNS"] == ""
    assert deletes[1]["config"]["runtimeConfig"] == {"portMappings": CAPS["portMappings"]}
    assert cni.cached("testnet", "box.1") is None
    cni.delete_cached(entry, "box.1", "")  # a second DEL is harmless


def test_failed_add_undoes_the_chain_and_reports_the_plugins_message(tmp_path, plugins, log):
    cni = Cni(runner, str(plugins), str(tmp_path / "state"))
    with pytest.raises(CniError, match="CNI ADD of plugin third failed: boom from third: the details"):
        cni.add(conflist(log, third={"fail": "ADD"}), Attachment("box.1", "/n"), CAPS)
    calls = [(c["plugin"], c["env"]["CNI_COMMAND"]) for c in log()]
    assert calls == [
        ("first", "ADD"),
        ("second", "ADD"),
        ("third", "ADD"),
        ("third", "DEL"),
        ("second", "DEL"),
        ("first", "DEL"),
    ]
    assert cni.cached("testnet", "box.1") is None


def test_del_goes_on_past_a_failing_plugin_and_then_fails(tmp_path, plugins, log):
    cni = Cni(runner, str(plugins), str(tmp_path / "state"))
    network = conflist(log, second={"fail": "DEL"})
    with pytest.raises(CniError, match="boom from second"):
        cni.delete(network, Attachment("box.1", ""), {}, None)
    assert [c["plugin"] for c in log()] == ["third", "second", "first"]


def test_a_missing_plugin_is_named(tmp_path, plugins, log):
    cni = Cni(runner, str(plugins), str(tmp_path / "state"))
    network = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "nosuch"}]}
    with pytest.raises(CniError, match=f"CNI plugin nosuch not found in {plugins}"):
        cni.add(network, Attachment("box.1", "/n"), {})


def test_grove_network_config():
    config = _cni.network_config("grove", "grove0", "10.18.3.0/24", ["0.0.0.0/0"], with_bandwidth=False)
    bridge, portmap = config["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["bridge"] == "grove0"
    assert bridge["isGateway"] is True
    assert bridge["ipMasq"] is True
    assert bridge["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.18.3.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.18.3.1"}],
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    with_limits = _cni.network_config("grove", "grove0", "10.18.3.0/24", [], with_bandwidth=True)
    assert with_limits["plugins"][-1] == {"type": "bandwidth", "capabilities": {"bandwidth": True}}


def test_bandwidth_limits_are_in_bits_with_a_usable_burst():
    limits = _cni.bandwidth_limits(800, 0)
    assert limits["ingressRate"] == 800_000
    assert limits["ingressBurst"] >= 8 * 1500
    assert "egressRate" not in limits
    assert _cni.bandwidth_limits(0, 0) == {}
    assert _cni.bandwidth_limits(0, 100_000)["egressBurst"] == 10_000_000  # a tenth of a second


def test_container_address_is_the_sandbox_interfaces_ipv4():
    result = {
        "interfaces": [
            {"name": "grove0"},
            {"name": "veth1"},
            {"name": "eth0", "sandbox": "/var/run/netns/x"},
        ],
        "ips": [
            {"interface": 0, "address": "10.18.0.1/24"},
            {"interface": 2, "address": "fd00::5/64"},
            {"interface": 2, "address": "10.18.0.5/24", "gateway": "10.18.0.1"},
        ],
    }
    assert _cni.container_address(result) == "10.18.0.5"
    assert _cni.container_address(None) == ""
    assert _cni.container_address({"ips": []}) == ""


def test_ipam_allocations_are_found_by_container_id(tmp_path):
    directory = tmp_path / "networks" / "grove"
    directory.mkdir(parents=True)
    (directory / "10.18.0.2").write_text("box.1\r\neth0")
    (directory / "10.18.0.3").write_text("box.10\r\neth0")
    (directory / "last_reserved_ip.0").write_text("10.18.0.3")
    (directory / "lock").write_text("")
    assert Cni(runner, "/nonexistent", str(tmp_path)).ipam_allocations("grove", "box.1") == ["10.18.0.2"]
    assert Cni(runner, "/nonexistent", str(tmp_path)).ipam_allocations("other", "box.1") == []


COMMENT_1 = r'"name: \"grove\" id: \"app.ns.web.ns.instance.1\""'
COMMENT_10 = r'"name: \"grove\" id: \"app.ns.web.ns.instance.10\""'
DNAT_1 = r'"dnat name: \"grove\" id: \"app.ns.web.ns.instance.1\""'
DNAT_CHAIN = "CNI-DN-933fe984c169db18e9f4f"
IPTABLES_S = f"""-P PREROUTING ACCEPT
-N CNI-933fe984c169db18e9f4fa77
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.18.0.7/32 -m comment --comment {COMMENT_1} -j CNI-933fe984c169db18e9f4fa77
-A POSTROUTING -s 10.18.0.9/32 -m comment --comment {COMMENT_10} -j CNI-0000
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment {DNAT_1} -m multiport --dports 6080 -j {DNAT_CHAIN}
"""


def test_nat_rules_of_a_container_are_found_by_their_comment():
    rules = _cni.nat_rules_of(IPTABLES_S, "grove", "app.ns.web.ns.instance.1")
    assert rules == [
        [
            "POSTROUTING",
            "-s",
            "10.18.0.7/32",
            "-m",
            "comment",
            "--comment",
            'name: "grove" id: "app.ns.web.ns.instance.1"',
            "-j",
            "CNI-933fe984c169db18e9f4fa77",
        ],
        [
            "CNI-HOSTPORT-DNAT",
            "-p",
            "tcp",
            "-m",
            "comment",
            "--comment",
            'dnat name: "grove" id: "app.ns.web.ns.instance.1"',
            "-m",
            "multiport",
            "--dports",
            "6080",
            "-j",
            "CNI-DN-933fe984c169db18e9f4f",
        ],
    ]
    assert _cni.nat_rules_of(IPTABLES_S, "other", "app.ns.web.ns.instance.1") == []
