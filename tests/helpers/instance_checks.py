"""Checks of what grove.edge.instance leaves on a worker host, read from the host itself.

Every function takes `run`: a callable that runs an argv list on the worker host (inside its
network and mount namespaces) and returns a `subprocess.CompletedProcess[str]` without raising,
e.g. `lambda argv: testbed.host_shell("c1w1", argv, check=False)`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

NAMESPACE = "grove"
NETWORK = "grove"
CNI_DIR = "/var/lib/cni"
LOG_DIR = "/var/log/grove"
NETNS_DIR = "/var/run/netns"

# Prints the IPAM files of a network that hold the container id (first line of each file).
_IPAM_OWNER_SCRIPT = """
import os, sys
directory, owner = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
    with open(os.path.join(directory, name), errors="replace") as handle:
        if handle.readline().strip() == owner:
            print(name)
"""


def must(run: Runner, argv: Sequence[str]) -> str:
    proc = run(argv)
    if proc.returncode != 0:
        raise AssertionError(f"{list(argv)} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return proc.stdout


def ctr(run: Runner, *args: str, namespace: str = NAMESPACE) -> str:
    return must(run, ["ctr", "--namespace", namespace, *args])


def containers(run: Runner, namespace: str = NAMESPACE) -> set[str]:
    return set(ctr(run, "containers", "list", "--quiet", namespace=namespace).split())


def tasks(run: Runner, namespace: str = NAMESPACE) -> dict[str, tuple[int, str]]:
    """container id -> (pid, status) from `ctr tasks list`."""
    table = {}
    for line in ctr(run, "tasks", "list", namespace=namespace).splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            table[fields[0]] = (int(fields[1]), fields[2])
    return table


def snapshot_keys(run: Runner, namespace: str = NAMESPACE) -> set[str]:
    lines = ctr(run, "snapshots", "list", namespace=namespace).splitlines()[1:]
    return {line.split()[0] for line in lines if line.split()}


def container_info(run: Runner, instance_id: str, namespace: str = NAMESPACE) -> dict:
    return json.loads(ctr(run, "containers", "info", instance_id, namespace=namespace))


def chain_names(network: str, instance_id: str) -> tuple[str, str]:
    """The iptables chains the bridge (ipMasq) and portmap plugins name after the container."""
    digest = hashlib.sha512((network + instance_id).encode()).hexdigest()
    return "CNI-" + digest[:24], "CNI-DN-" + digest[:21]


def leftovers(
    run: Runner,
    instance_id: str,
    *,
    namespace: str = NAMESPACE,
    network: str = NETWORK,
    cni_dir: str = CNI_DIR,
    log_dir: str = LOG_DIR,
) -> list[str]:
    """Everything of the instance still on the host; empty after `state: absent`."""
    found = []
    if instance_id in containers(run, namespace):
        found.append("container")
    if instance_id in tasks(run, namespace):
        found.append("task")
    if instance_id in snapshot_keys(run, namespace):
        found.append("snapshot")
    for what, path in (
        ("network namespace", f"{NETNS_DIR}/{instance_id}"),
        ("CNI result cache", f"{cni_dir}/results/{network}-{instance_id}-eth0"),
        ("log file", f"{log_dir}/{instance_id}.log"),
        ("hosts file", f"/run/grove/hosts/{instance_id}"),
        ("environment file", f"/run/grove/env/{instance_id}.env"),
    ):
        if run(["test", "-e", path]).returncode == 0:
            found.append(f"{what} {path}")
    owned = must(run, ["python3", "-c", _IPAM_OWNER_SCRIPT, f"{cni_dir}/networks/{network}", instance_id])
    found += [f"IPAM allocation {name}" for name in owned.split()]
    rules = must(run, ["iptables-save"])
    found += [f"iptables rule: {line}" for line in rules.splitlines() if f'id: \\"{instance_id}\\"' in line]
    ruleset = must(run, ["nft", "list", "ruleset"])
    found += [f"nft chain {chain}" for chain in chain_names(network, instance_id) if chain in ruleset]
    return found


def cgroup_limits(run: Runner, instance_id: str, namespace: str = NAMESPACE) -> dict[str, int | None]:
    """Memory limit (bytes) and CPU quota/period the kernel enforces for the instance (cgroup v1 or v2)."""
    spec = container_info(run, instance_id, namespace)["Spec"]
    path = spec["linux"]["cgroupsPath"].strip("/")

    def read(*candidates: str) -> str | None:
        for candidate in candidates:
            proc = run(["cat", f"/sys/fs/cgroup/{candidate}"])
            if proc.returncode == 0:
                return proc.stdout.strip()
        return None

    memory = read(f"memory/{path}/memory.limit_in_bytes", f"{path}/memory.max")
    quota = read(f"cpu/{path}/cpu.cfs_quota_us", f"cpu,cpuacct/{path}/cpu.cfs_quota_us")
    period = read(f"cpu/{path}/cpu.cfs_period_us", f"cpu,cpuacct/{path}/cpu.cfs_period_us")
    if quota is None:
        cpu_max = read(f"{path}/cpu.max")
        if cpu_max:
            quota, period = cpu_max.split()
    return {
        "memory": int(memory) if memory and memory.isdigit() else None,
        "cpu_quota": int(quota) if quota and quota.lstrip("-").isdigit() else None,
        "cpu_period": int(period) if period and period.isdigit() else None,
    }


def wait_http(url: str, *, contains: str = "", timeout: float = 30) -> str:
    """Poll `url` from this process (never through a proxy) until it answers 200 with `contains`."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with opener.open(url, timeout=5) as response:
                body = response.read().decode(errors="replace")
                if response.status == 200 and contains in body:
                    return body
                last = f"HTTP {response.status}: {body[:200]!r}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer with {contains!r} within {timeout:.0f}s: {last}")
        time.sleep(0.2)
