"""Address and naming plan of the local edge test bed.

Everything the test bed creates is named from this module, so that `down` can find it again by
name even when `up` crashed before it wrote its state file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

NETNS_PREFIX = "grove-"
VETH_PREFIX = "gv-"
BRIDGE = "grovebr0"
NFT_TABLE = "grove_testbed"
BRIDGE_NETWORK = ipaddress.ip_network("10.99.0.0/16")
BRIDGE_ADDRESS = ipaddress.ip_interface("10.99.0.1/16")
INSTANCE_NETWORK = ipaddress.ip_network("10.18.0.0/16")
SERVICE_NETWORK = ipaddress.ip_network("10.30.0.0/16")
# Ranges the test bed (and the instances on it) use; each gets an `unreachable` route in the root
# namespace, so a packet for a host that is gone fails here instead of leaving the machine.
GUARDED_NETWORKS = (BRIDGE_NETWORK, INSTANCE_NETWORK, SERVICE_NETWORK)
# A high metric lets the guard coexist with the bridge's connected route for the same prefix.
GUARD_METRIC = 4242
REGISTRY_PORT = 5000
MAX_CLUSTERS = 50
MAX_WORKERS = 200

# Paths every worker host sees privately, so roles and modules use the standard locations.
PRIVATE_PATHS = (
    "/etc/containerd",
    "/var/lib/containerd",
    "/run/containerd",
    "/etc/cni",
    "/var/lib/cni",
    "/var/log/grove",
    "/run/grove",
    "/etc/grove",
)


def state_dir() -> Path:
    return Path(os.environ.get("GROVE_TESTBED_DIR", "/var/lib/grove/testbed"))


def cache_dir() -> Path:
    return Path(os.environ.get("GROVE_CACHE_DIR", "/var/cache/grove"))


@dataclass(frozen=True)
class Host:
    cluster: int
    worker: int
    index: int  # 1-based over all hosts; picks the host's instance subnet

    @property
    def name(self) -> str:
        return f"c{self.cluster}w{self.worker}"

    @property
    def cluster_name(self) -> str:
        return f"cluster{self.cluster}"

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        return VETH_PREFIX + self.name

    @property
    def address(self) -> ipaddress.IPv4Address:
        return BRIDGE_NETWORK.network_address + (self.cluster * 256 + 10 + self.worker)

    @property
    def instance_subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(f"10.18.{self.index}.0/24")

    def directory(self) -> Path:
        return state_dir() / "hosts" / self.name


def plan(clusters: int, workers: int) -> list[Host]:
    if not 1 <= clusters <= MAX_CLUSTERS:
        raise ValueError(f"--clusters must be between 1 and {MAX_CLUSTERS}, got {clusters}")
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
    if clusters * workers > 250:
        raise ValueError(f"at most 250 worker hosts in all, asked for {clusters * workers}")
    hosts = []
    for c in range(1, clusters + 1):
        for w in range(1, workers + 1):
            hosts.append(Host(cluster=c, worker=w, index=len(hosts) + 1))
    return hosts


def registry_address() -> str:
    return f"{BRIDGE_ADDRESS.ip}:{REGISTRY_PORT}"
