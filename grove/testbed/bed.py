"""`grove testbed up|status|down`: worker hosts as namespaces with their own sshd, on one machine."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from grove.testbed import layout, registry
from grove.testbed.commands import TestbedError, run, wait_until
from grove.testbed.layout import Host
from grove.testbed.processes import kill_and_wait, mnt_inodes_of, pids_in_namespaces, pids_with_cmdline

log = logging.getLogger("grove.testbed")

STATE_FILE = "state.json"
NETNS_DIR = "/run/netns"
HOSTINIT = Path(__file__).with_name("hostinit.py")
SYSTEM_PYTHON = "/usr/bin/python3"
REQUIRED_COMMANDS = (
    "ip",
    "nft",
    "nsenter",
    "unshare",
    "ssh-keygen",
    "/usr/sbin/sshd",
    "/usr/bin/docker-registry",
    "umoci",
    "skopeo",
    "containerd",
    "ctr",
    "runc",
    SYSTEM_PYTHON,
)


def _state_file() -> Path:
    return layout.state_dir() / STATE_FILE


def read_state() -> dict | None:
    try:
        return json.loads(_state_file().read_text())
    except FileNotFoundError:
        return None


def _write_state(state: dict) -> None:
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file())


def inventory_path() -> Path:
    return layout.state_dir() / "inventory.yml"


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise TestbedError("the test bed needs root (network namespaces, mounts, sshd)")
    missing = [c for c in REQUIRED_COMMANDS if shutil.which(c) is None]
    if missing:
        raise TestbedError(f"missing commands: {', '.join(missing)}; run `make setup` first")


def _guard_routes() -> None:
    for network in layout.GUARDED_NETWORKS:
        proc = run(
            ["ip", "route", "replace", "unreachable", str(network), "metric", str(layout.GUARD_METRIC)],
            check=False,
        )
        if proc.returncode != 0:
            raise TestbedError(f"cannot add the safety route for {network}: {proc.stderr.strip()}")


def _bridge_and_firewall() -> None:
    if run(["ip", "link", "show", layout.BRIDGE], check=False).returncode != 0:
        run(["ip", "link", "add", layout.BRIDGE, "type", "bridge"])
    run(["ip", "addr", "replace", str(layout.BRIDGE_ADDRESS), "dev", layout.BRIDGE])
    run(["ip", "link", "set", layout.BRIDGE, "up"])
    # Nothing that enters from the test bridge may be routed anywhere but back into the test bed.
    ruleset = (
        f"table inet {layout.NFT_TABLE} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        f'    iifname "{layout.BRIDGE}" oifname != "{layout.BRIDGE}" drop\n'
        f'    oifname "{layout.BRIDGE}" iifname != "{layout.BRIDGE}" drop\n'
        "  }\n"
        "}\n"
    )
    run(["nft", "-f", "-"], input_text=ruleset)


def _ssh_keys() -> Path:
    key = layout.state_dir() / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "grove-testbed", "-f", str(key)])
    (layout.state_dir() / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    return key


def known_hosts_path() -> Path:
    return layout.state_dir() / "known_hosts"


def _host_key(host: Host) -> Path:
    host_key = host.directory() / "ssh_host_ed25519_key"
    if not host_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
    return host_key


def _write_known_hosts(hosts: list[Host]) -> Path:
    """The hosts' public keys, made here, so SSH verifies every host instead of trusting the first answer."""
    lines = []
    for host in hosts:
        key_type, key = Path(f"{_host_key(host)}.pub").read_text().split()[:2]
        lines.append(f"{host.address} {key_type} {key}\n")
    path = known_hosts_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)
    return path


def _sshd_config(host: Host) -> Path:
    directory = host.directory()
    host_key = _host_key(host)
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress {host.address}\nPort 22\nHostKey {host_key}\nPidFile none\n"
        f"AuthorizedKeysFile {layout.state_dir()}/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPrintMotd no\nMaxStartups 100:30:200\nMaxSessions 100\n"
        "SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "Subsystem sftp internal-sftp\n"
    )
    return config


def _host_network(host: Host) -> None:
    run(["ip", "netns", "add", host.netns])
    run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", layout.BRIDGE, "up"])
    address = f"{host.address}/{layout.BRIDGE_NETWORK.prefixlen}"
    run(["ip", "-n", host.netns, "addr", "add", address, "dev", "eth0"])
    run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", host.netns, "link", "set", "lo", "up"])


def _start_host(host: Host) -> dict:
    directory = host.directory()
    spec = {
        "hostname": host.name,
        "binds": [[str(directory / "fs" / p.strip("/").replace("/", "_")), p] for p in layout.PRIVATE_PATHS],
        "sshd_config": str(_sshd_config(host)),
        "log": str(directory / "host.log"),
    }
    proc = subprocess.Popen(
        [
            "nsenter",
            f"--net=/var/run/netns/{host.netns}",
            "--",
            "unshare",
            "--mount",
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
            SYSTEM_PYTHON,
            str(HOSTINIT),
            json.dumps(spec),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "host.log", "ab"),
        start_new_session=True,
    )
    return {
        "name": host.name,
        "cluster": host.cluster_name,
        "address": str(host.address),
        "netns": host.netns,
        "unshare_pid": proc.pid,
        "instance_subnet": str(host.instance_subnet),
    }


def _answers_ssh(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1) as conn:
            return conn.recv(4).startswith(b"SSH")
    except OSError:
        return False


def _write_inventory(hosts: list[Host], key: Path, known_hosts: Path) -> Path:
    clusters: dict[str, dict] = {}
    for host in hosts:
        group = clusters.setdefault(
            host.cluster_name,
            {
                "vars": {"grove_cluster": host.cluster_name, "grove_cluster_location": "testbed"},
                "hosts": {},
            },
        )
        group["hosts"][host.name] = {
            "ansible_host": str(host.address),
            "grove_instance_subnet": str(host.instance_subnet),
            "grove_testbed_netns": host.netns,
        }
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(key),
                "ansible_python_interpreter": SYSTEM_PYTHON,
                # Only the keys the test bed made are trusted, whatever ansible.cfg or the user's
                # known_hosts say: a host that answers with another key is refused.
                "ansible_ssh_host_key_checking": True,
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={shlex.quote(str(known_hosts))} "
                    "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
                ),
                "containerd_registry_mirrors": {"docker.io": [f"http://{layout.registry_address()}"]},
                "containerd_registry_fallback_to_upstream": False,
                "grove_testbed": True,
                # playbooks/workers.yml connects the hosts' instance subnets (role grove_network).
                "grove_network_enabled": True,
            },
            "children": clusters,
        }
    }
    path = inventory_path()
    path.write_text(
        "# Written by `grove testbed up`; clusters are groups, workers are hosts.\n"
        + yaml.safe_dump(inventory, sort_keys=False)
    )
    return path


def _publish_images() -> None:
    from grove.testbed import images  # noqa: PLC0415 - building images is the slow, optional part

    built = images.build_images(cache_dir=layout.cache_dir() / "images")
    images.push_images(built, registry=layout.registry_address())


def up(clusters: int = 1, workers: int = 2, *, with_images: bool = True) -> Path:
    """Create the test bed (or confirm the running one has this shape); returns the inventory path."""
    _check_prerequisites()
    hosts = layout.plan(clusters, workers)
    state = read_state()
    if state is not None:
        if (
            state.get("complete")
            and state["clusters"] == clusters
            and state["workers"] == workers
            and all(_answers_ssh(h["address"]) for h in state["hosts"])
            and registry.answers()
        ):
            log.info("test bed already up with %d cluster(s) of %d worker(s)", clusters, workers)
            if with_images:
                _publish_images()  # from the cache, and only what the registry lacks
            return inventory_path()
        if state.get("complete") and (state["clusters"], state["workers"]) != (clusters, workers):
            raise TestbedError(
                f"a test bed with {state['clusters']} cluster(s) of {state['workers']} worker(s) is up; "
                "run `grove testbed down` first"
            )
        log.info("cleaning up a test bed that did not come up completely")
        down()
    layout.state_dir().mkdir(parents=True, exist_ok=True)
    state = {
        "clusters": clusters,
        "workers": workers,
        "complete": False,
        "hosts": [],
        "netns_dir_made": not netns_dir_mounted(),
    }
    _write_state(state)
    _guard_routes()
    _bridge_and_firewall()
    key = _ssh_keys()
    for host in hosts:
        host.directory().mkdir(parents=True, exist_ok=True)
        _host_network(host)
        state["hosts"].append(_start_host(host))
        _write_state(state)
        if os.environ.get("GROVE_TESTBED_CRASH_AFTER_HOSTS") == str(len(state["hosts"])):
            # Fault injection for the tests: die like a killed process, without any cleanup.
            os._exit(70)
    state["registry_pid"] = registry.start()
    _write_state(state)
    for entry in state["hosts"]:
        wait_until(lambda a=entry["address"]: _answers_ssh(a), timeout=30, what=f"sshd on {entry['name']}")
    if with_images:
        _publish_images()
    path = _write_inventory(hosts, key, _write_known_hosts(hosts))
    state["complete"] = True
    state["inventory"] = str(path)
    _write_state(state)
    return path


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/var/run/netns/{name}").st_ino
    except OSError:
        return None


def netns_dir_mounted() -> bool:
    """Whether /run/netns is a mount point: the first `ip netns add` on a machine makes it one (a
    shared bind mount of itself) and iproute2 never undoes that."""
    # os.path.ismount misses a bind mount of a directory onto itself.
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return any(line.split()[4] == NETNS_DIR for line in lines)


def release_netns_dir() -> None:
    """Undo the /run/netns mount once no namespace is left in it, for whoever made it; umount
    refuses (and the mount stays) while anyone else's namespace is mounted there."""
    if netns_dir_mounted() and not any(Path(NETNS_DIR).iterdir()):
        run(["umount", NETNS_DIR], check=False)


def testbed_netns() -> list[str]:
    proc = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(layout.NETNS_PREFIX)]


def down() -> None:
    """Remove everything the test bed made, found by name, also after a crash half-way through `up`."""
    _check_prerequisites()
    state = read_state() or {}
    names = testbed_netns()
    net_inodes = {i for i in (_netns_inode(n) for n in names) if i is not None}
    in_hosts = pids_in_namespaces(net_inodes)
    # Shims and containers run in a host's mount namespace but not always in its network one.
    in_hosts |= pids_in_namespaces(set(), mnt_inodes_of(in_hosts) - mnt_inodes_of({os.getpid()}))
    in_hosts |= pids_with_cmdline(str(HOSTINIT))
    in_hosts |= pids_with_cmdline(str(registry.config_path()))
    if in_hosts:
        kill_and_wait(in_hosts)
    for name in names:
        run(["ip", "netns", "delete", name], check=False)
    if state.get("netns_dir_made"):
        release_netns_dir()
    links = run(["ip", "-o", "link", "show"], check=False).stdout
    for line in links.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if link == layout.BRIDGE or link.startswith(layout.VETH_PREFIX):
            run(["ip", "link", "delete", link], check=False)
    run(["nft", "delete", "table", "inet", layout.NFT_TABLE], check=False)
    for network in layout.GUARDED_NETWORKS:
        run(
            ["ip", "route", "delete", "unreachable", str(network), "metric", str(layout.GUARD_METRIC)],
            check=False,
        )
    _remove_leftover_cgroups()
    shutil.rmtree(layout.state_dir(), ignore_errors=True)


def _remove_leftover_cgroups() -> None:
    """runc's cgroups of containers killed with their host; empty directories only."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        for parent in (controller / "grove", controller / "unified" / "grove"):
            if not parent.is_dir():
                continue
            for child in sorted(parent.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if child.is_dir():
                    try:
                        child.rmdir()
                    except OSError:
                        pass
            try:
                parent.rmdir()
            except OSError:
                pass


def status() -> list[dict]:
    state = read_state()
    if state is None:
        return []
    return [dict(h, answers=_answers_ssh(h["address"])) for h in state["hosts"]] + [
        {"name": "registry", "address": layout.registry_address(), "answers": registry.answers()}
    ]


def main_up(clusters: int, workers: int, with_images: bool) -> int:
    path = up(clusters, workers, with_images=with_images)
    for entry in status():
        print(f"{entry['name']:10} {entry['address']:18} {'up' if entry['answers'] else 'NOT ANSWERING'}")
    print(path)
    return 0


def main_status() -> int:
    entries = status()
    if not entries:
        print("no test bed is up")
        return 1
    for entry in entries:
        print(
            f"{entry['name']:10} {entry.get('cluster', ''):10} {entry['address']:18} "
            f"{'answers' if entry['answers'] else 'NOT ANSWERING'}"
        )
    return 0 if all(e["answers"] for e in entries) else 1


def main_down() -> int:
    down()
    print("test bed removed")
    return 0


if __name__ == "__main__":
    sys.exit(main_status())
