#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_info
short_description: Facts of a Grove worker, including the instances it runs
version_added: 0.1.0
author: Grove developers (@grove)
description:
  - Reports the worker's resources, its container runtime and every Grove instance found in containerd.
  - The instances are read back from containerd (labels written by M(grove.edge.instance) and the tasks'
    states), so the hosts themselves are the record of what runs where.
options:
  namespace:
    description: containerd namespace of the instances.
    type: str
    default: grove
  containerd_address:
    description: containerd's socket.
    type: path
    default: /run/containerd/containerd.sock
  containerd_config_dir:
    description: containerd's configuration directory; its C(config.toml) says where the data lives.
    type: path
    default: /etc/containerd
  cni_bin_dir:
    description: Directory of the CNI plugins. Default C(/usr/lib/cni) when it exists, else C(/opt/cni/bin).
    type: path
  log_dir:
    description: Where M(grove.edge.instance) writes the instances' logs; each one's tail is reported.
    type: path
    default: /var/log/grove
  network_record:
    description: The instance subnet record the C(grove_network) role keeps on the worker.
    type: path
    default: /etc/grove/network.json
  overlay_device:
    description: The C(grove_network) role's VXLAN device, whose MTU instances must respect.
    type: str
    default: grove-vx
attributes:
  check_mode:
    description: The module changes nothing and runs in check mode as usual.
    support: full
  diff_mode:
    description: The module changes nothing, so it has no diff.
    support: none
  action_group:
    description: Use C(group/grove.edge.worker) in C(module_defaults) to set the worker settings once.
    support: full
    membership: [grove.edge.worker]
notes:
  - If containerd does not answer, C(runtimes) and C(instances) are empty and C(containerd_error) says why.
"""

EXAMPLES = r"""
- name: Gather worker facts
  grove.edge.node_info:
  register: worker

- name: Show the instances
  ansible.builtin.debug:
    msg: "{{ worker.node.instances | map(attribute='id') }}"
"""

RETURN = r"""
node:
  description: The worker's facts.
  returned: always
  type: dict
  contains:
    hostname:
      description: Host name
      type: str
    architecture:
      description: CPU architecture in Go's naming (amd64, arm64, arm, ...)
      type: str
    machine:
      description: C(uname -m)
      type: str
    vcpus:
      description: Number of CPUs
      type: int
    memory_mb:
      description: Total memory in MB
      type: int
    memory_free_mb:
      description: Available memory in MB (MemAvailable)
      type: int
    gpus:
      description: GPUs found in C(/proc/driver/nvidia/gpus) or as C(/dev/dri) render nodes.
      type: list
      elements: dict
    disk_free_mb:
      description: Free space in MB where containerd keeps its data
      type: int
    containerd_root:
      description: The directory measured for I(disk_free_mb)
      type: str
    runtimes:
      description: C([container]) when containerd answers, else empty
      type: list
      elements: str
    containerd_version:
      description: containerd's version, or null
      type: str
    containerd_error:
      description: Why containerd could not be read, or empty
      type: str
    cni_bin_dir:
      description: The directory searched for the CNI plugins
      type: str
    cni_missing:
      description: CNI plugins that grove.edge.instance needs and that are missing from I(cni_bin_dir)
      type: list
      elements: str
    network:
      description:
        - C(subnet), the instance subnet recorded by the C(grove_network) role (empty without one),
          and C(mtu), the overlay device's MTU (0 without an overlay).
      type: dict
    sampled_at:
      description: When the counters were read (seconds since the epoch).
      type: float
    cpu_times:
      description:
        - The host's busy and total CPU time in clock ticks, cumulative; two samples give its load.
      type: dict
    instances:
      description:
        - Grove instances in the namespace, as M(grove.edge.instance) returns them, plus C(usage)
          (C(cpu_ns) cumulative, C(memory_bytes), C(memory_limit_bytes), read from the instance's
          cgroup) and C(log_tail), the last lines of its log.
      type: list
      elements: dict
  sample:
    hostname: c1w1
    architecture: amd64
    machine: x86_64
    vcpus: 2
    memory_mb: 24000
    memory_free_mb: 22000
    gpus: []
    disk_free_mb: 80000
    containerd_root: /var/lib/containerd
    runtimes: [container]
    containerd_version: 1.6.20~ds1
    containerd_error: ""
    network: {subnet: 10.18.1.0/24, mtu: 1450}
    sampled_at: 1795600000.5
    cpu_times: {busy: 120034, total: 9800321}
    cni_bin_dir: /usr/lib/cni
    cni_missing: []
    instances:
      - id: clientsrvr.test.nginx.test.instance.1
        service: clientsrvr.test.nginx.test
        instance_number: 1
        status: RUNNING
        task_status: RUNNING
        exit_status: null
        address: 10.18.1.2
        ports: "6080:80/tcp"
        host_ports: [6080/tcp]
        pid: 4242
        image: docker.io/library/nginx:latest
        one_shot: false
        resources: {vcpus: 1.0, memory: 100, vgpus: 0, storage: 0}
        usage: {cpu_ns: 81230000, memory_bytes: 4612096, memory_limit_bytes: 104857600}
        log_tail: "2026/11/26 10:00:01 [notice] 1#1: start worker processes"
"""

# Ansible modules keep their documentation first, so imports follow it.
import os
import re
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils import _instance as spec_utils
from ansible_collections.grove.edge.plugins.module_utils._arch import architecture
from ansible_collections.grove.edge.plugins.module_utils._containerd import (
    Containerd,
    ContainerdError,
)
from ansible_collections.grove.edge.plugins.module_utils._lifecycle import default_cni_bin_dir
from ansible_collections.grove.edge.plugins.module_utils._subnet_pool import SubnetError, parse_record
from ansible_collections.grove.edge.plugins.module_utils._usage import cpu_times, log_tail, read_text, usage

# grove.edge.instance runs these; a worker without them cannot host an instance.
CNI_PLUGINS = ("bridge", "host-local", "portmap", "bandwidth")
CONFIG_FILE = "config.toml"
CONTAINERD_ROOT = "/var/lib/containerd"


def meminfo() -> dict[str, int]:
    values = {}
    with open("/proc/meminfo") as handle:
        for line in handle:
            name, _colon, rest = line.partition(":")
            fields = rest.split()
            if fields and fields[0].isdigit():
                values[name] = int(fields[0])  # kB
    return values


def gpus() -> list[dict]:
    found = []
    nvidia = "/proc/driver/nvidia/gpus"
    if os.path.isdir(nvidia):
        for bus in sorted(os.listdir(nvidia)):
            info = read_text(os.path.join(nvidia, bus, "information"))
            model = re.search(r"^Model:\s*(.+)$", info, re.MULTILINE)
            found.append({"vendor": "nvidia", "model": model.group(1).strip() if model else "", "bus": bus})
        if found:
            return found
    if os.path.isdir("/dev/dri"):
        for name in sorted(os.listdir("/dev/dri")):
            if name.startswith("renderD"):
                vendor = read_text(f"/sys/class/drm/{name}/device/vendor")
                found.append(
                    {
                        "vendor": vendor,
                        "model": read_text(f"/sys/class/drm/{name}/device/device"),
                        "device": "/dev/dri/" + name,
                    }
                )
    return found


def containerd_root(config_dir: str) -> str:
    """The `root` of containerd's config file, else containerd's default."""
    text = read_text(os.path.join(config_dir, CONFIG_FILE))
    # Only top-level keys come before the first [table]; `root` is one of them.
    top = re.split(r"^\s*\[", text, maxsplit=1, flags=re.MULTILINE)[0]
    match = re.search(r"""^\s*root\s*=\s*["']([^"']+)["']""", top, re.MULTILINE)
    return match.group(1) if match else CONTAINERD_ROOT


def free_mb(path: str) -> int:
    # The directory may not exist yet on a fresh worker: measure the filesystem it will be on.
    while not os.path.exists(path) and path not in ("", "/"):
        path = os.path.dirname(path)
    stat = os.statvfs(path or "/")
    return stat.f_bavail * stat.f_frsize // (1024 * 1024)


def instances(containerd: Containerd, log_dir: str) -> list[dict]:
    containers = containerd.containers([f'labels."{spec_utils.LABEL_SERVICE}"'])
    tasks = containerd.tasks()
    found = []
    for container in containers:
        facts = spec_utils.facts(container, tasks.get(container["id"]))
        facts["usage"] = usage(facts["pid"])
        facts["log_tail"] = log_tail(os.path.join(log_dir, container["id"] + ".log"))
        found.append(facts)
    return sorted(found, key=lambda item: (item["service"], item["instance_number"] or 0, item["id"]))


ARGUMENT_SPEC = {
    "namespace": {"type": "str", "default": "grove"},
    "containerd_address": {"type": "path", "default": "/run/containerd/containerd.sock"},
    "containerd_config_dir": {"type": "path", "default": "/etc/containerd"},
    "cni_bin_dir": {"type": "path"},
    "log_dir": {"type": "path", "default": "/var/log/grove"},
    "network_record": {"type": "path", "default": "/etc/grove/network.json"},
    "overlay_device": {"type": "str", "default": "grove-vx"},
}


def network(record_path: str, device: str) -> dict:
    """What the grove_network role set up here: the recorded instance subnet, the overlay's MTU."""
    try:
        subnet = parse_record(read_text(record_path), record_path).get("instance_subnet", "")
    except SubnetError:
        subnet = ""
    mtu = read_text(os.path.join("/sys/class/net", os.path.basename(device), "mtu"))
    return {"subnet": subnet, "mtu": int(mtu) if mtu.isdigit() else 0}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    if not spec_utils.NAMESPACE_PATTERN.fullmatch(module.params["namespace"]):
        module.fail_json(
            msg="namespace {!r} is not a valid containerd namespace".format(module.params["namespace"])
        )
    memory = meminfo()
    root = containerd_root(module.params["containerd_config_dir"])
    cni_bin_dir = module.params["cni_bin_dir"] or default_cni_bin_dir()
    node = {
        "hostname": socket.gethostname(),
        "machine": os.uname().machine,
        "architecture": architecture(os.uname().machine),
        "vcpus": os.cpu_count() or 0,
        "memory_mb": memory.get("MemTotal", 0) // 1024,
        "memory_free_mb": memory.get("MemAvailable", memory.get("MemFree", 0)) // 1024,
        "gpus": gpus(),
        "containerd_root": root,
        "disk_free_mb": free_mb(root),
        "runtimes": [],
        "containerd_version": None,
        "containerd_error": "",
        "network": network(module.params["network_record"], module.params["overlay_device"]),
        "sampled_at": time.time(),
        "cpu_times": cpu_times(),
        "cni_bin_dir": cni_bin_dir,
        "cni_missing": [p for p in CNI_PLUGINS if not os.access(os.path.join(cni_bin_dir, p), os.X_OK)],
        "instances": [],
    }
    containerd = Containerd(
        module.run_command, module.params["containerd_address"], module.params["namespace"]
    )
    try:
        node["containerd_version"] = containerd.version()["version"]
        node["runtimes"] = ["container"]
        node["instances"] = instances(containerd, module.params["log_dir"])
    except ContainerdError as exc:
        node["containerd_error"] = str(exc)
    module.exit_json(changed=False, node=node)


if __name__ == "__main__":
    main()
