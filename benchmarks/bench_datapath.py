"""Service address vs. instance address: latency and throughput of the data path on the test bed.

One client container (curl) on worker c1w1 talks to two nginx instances, one on the other worker
(across the VXLAN overlay) and one on its own worker (same bridge, so the service address needs
the hairpin masquerade). For each, the same client, in the same run, alternates between the
instance address (the baseline) and the service's round-robin address (nftables DNAT):

- latency: requests on a fresh TCP connection each (curl's time_total: connect + request +
  response), in interleaved batches, median and p95;
- throughput: downloads of a 64 MiB file, median.

All traffic stays between the test bed's network namespaces. The script takes the test bed lock
for its whole run (like the test suite) and leaves the test bed down.

    sudo .venv/bin/python benchmarks/bench_datapath.py [requests per target]
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
ENV = {
    **os.environ,
    "PATH": f"{BIN}:{os.environ['PATH']}",
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
    "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
}
LOCK = "/run/lock/grove-testbed.lock"
APP = "benchnet.test"
CLIENT = f"{APP}.client.test.instance.0"
BATCH = 50
DOWNLOADS = 5
BIG_FILE_MB = 64
TARGETS = {
    # name: (nginx service, worker it runs on, service address)
    "across workers (VXLAN)": (f"{APP}.remote.test", "c1w2", "10.30.77.1"),
    "same worker (bridge, hairpin)": (f"{APP}.local.test", "c1w1", "10.30.77.2"),
}
SETUP_PLAYBOOK = """
- name: Instances for the data path benchmark
  hosts: all
  gather_facts: false
  tasks:
    - name: Ensure the instances placed here
      grove.edge.instance:
        service: "{{ item.service }}"
        instance_number: 0
        image: "{{ item.image }}"
        cmd: "{{ item.cmd }}"
        memory: 256
        vcpus: 1
        stop_timeout: 2
        subnet: "{{ grove_instance_subnet }}"
        state: "{{ bench_state }}"
      loop: "{{ bench_instances | selectattr('worker', 'equalto', inventory_hostname) | list }}"
      register: bench_result
"""


def run(argv: list[str], *, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, input=stdin, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class Bed:
    def __init__(self, inventory: str) -> None:
        self.inventory = inventory
        data = yaml.safe_load(Path(inventory).read_text())
        self.key = data["all"]["vars"]["ansible_ssh_private_key_file"]
        # The inventory's own SSH options: hosts are checked against the test bed's known_hosts.
        self.ssh_options = shlex.split(data["all"]["vars"]["ansible_ssh_common_args"])
        self.hosts = {
            name: hostvars
            for group in data["all"]["children"].values()
            for name, hostvars in group["hosts"].items()
        }

    def playbook(self, path: str, extravars: dict) -> str:
        argv = [str(BIN / "ansible-playbook"), "-i", self.inventory, path, "-e", json.dumps(extravars)]
        return run(argv).stdout

    def module(self, host: str, module: str, args: dict) -> None:
        run([str(BIN / "ansible"), "-i", self.inventory, host, "-m", module, "-a", json.dumps(args)])

    def shell(self, host: str, argv: list[str]) -> str:
        ssh = [
            "ssh", "-i", self.key, *self.ssh_options, "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            f"root@{self.hosts[host]['ansible_host']}", "--",
        ]  # fmt: skip
        return run([*ssh, *[shlex.quote(a) for a in argv]]).stdout

    def exec_in(self, host: str, container: str, script: str) -> str:
        exec_id = f"bench{time.monotonic_ns()}"
        return self.shell(
            host, ["ctr", "-n", "grove", "task", "exec", "--exec-id", exec_id, container, "sh", "-c", script]
        )


def instances() -> list[dict]:
    tail = {"image": "docker.io/curlimages/curl:latest", "cmd": ["sh", "-c", "tail -f /dev/null"]}
    found = [dict(tail, service=f"{APP}.client.test", worker="c1w1")]
    for service, worker, _rr_ip in TARGETS.values():
        found.append(
            {"service": service, "worker": worker, "image": "docker.io/library/nginx:latest", "cmd": []}
        )
    return found


def addresses(bed: Bed) -> dict[str, str]:
    found = {}
    for host in bed.hosts:
        out = run([str(BIN / "ansible"), "-i", bed.inventory, host, "-m", "grove.edge.node_info"]).stdout
        node = json.loads(out[out.index("{") :])["node"]
        found.update({i["id"]: i["address"] for i in node["instances"] if i["service"].startswith(APP)})
    return found


def curl_loop(bed: Bed, url: str, count: int, fmt: str, extra: str = "") -> list[float]:
    script = (
        f"for i in $(seq 1 {count}); do curl -s --noproxy '*' --max-time 30 -o /dev/null {extra} "
        f"-w '{fmt}\\n' '{url}' || echo FAILED; done"
    )
    lines = bed.exec_in("c1w1", CLIENT, script).split()
    if "FAILED" in lines or len(lines) != count:
        raise SystemExit(f"requests to {url} failed: {lines[:10]}")
    return [float(value) for value in lines]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(bed: Bed, direct: str, service: str, requests: int) -> dict:
    latency: dict[str, list[float]] = {"direct": [], "service": []}
    for _ in range(max(1, requests // BATCH)):
        for kind, address in (("direct", direct), ("service", service)):
            latency[kind] += curl_loop(
                bed, f"http://{address}/", BATCH, "%{time_total}", "-H 'Connection: close'"
            )
    speed: dict[str, list[float]] = {"direct": [], "service": []}
    for _ in range(DOWNLOADS):
        for kind, address in (("direct", direct), ("service", service)):
            speed[kind] += curl_loop(bed, f"http://{address}/big", 1, "%{speed_download}")
    return {"latency": latency, "speed": speed}


def report(results: dict[str, dict], requests: int) -> None:
    print(f"Latency: {requests} requests per address, one new TCP connection each (curl time_total).")
    print()
    print("| path | address | median (ms) | p95 (ms) | median vs. direct |")
    print("|---|---|---:|---:|---:|")
    for name, result in results.items():
        base = statistics.median(result["latency"]["direct"])
        for kind in ("direct", "service"):
            values = result["latency"][kind]
            label = "instance address" if kind == "direct" else "service address (DNAT)"
            median = statistics.median(values)
            print(
                f"| {name} | {label} | {median * 1000:.3f} | {p95(values) * 1000:.3f} | {median / base:.2f} |"
            )
    print()
    print(f"Throughput: {DOWNLOADS} downloads of {BIG_FILE_MB} MiB per address (curl speed_download).")
    print()
    print("| path | address | median (Mbit/s) | min (Mbit/s) | median vs. direct |")
    print("|---|---|---:|---:|---:|")
    for name, result in results.items():
        base = statistics.median(result["speed"]["direct"])
        for kind in ("direct", "service"):
            values = result["speed"][kind]
            label = "instance address" if kind == "direct" else "service address (DNAT)"
            median = statistics.median(values)
            mbits, lowest = median * 8 / 1e6, min(values) * 8 / 1e6
            print(f"| {name} | {label} | {mbits:.0f} | {lowest:.0f} | {median / base:.2f} |")


def main() -> int:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run([str(BIN / "grove"), "testbed", "down"])
        try:
            inventory = run([str(BIN / "grove"), "testbed", "up"]).stdout.strip().splitlines()[-1]
            bed = Bed(inventory)
            bed.playbook("playbooks/workers.yml", {})
            with tempfile.NamedTemporaryFile(
                "w", suffix=".yml", dir=REPO / "benchmarks", delete=False
            ) as handle:
                handle.write(SETUP_PLAYBOOK)
            try:
                bed.playbook(handle.name, {"bench_instances": instances(), "bench_state": "started"})
                found = addresses(bed)
                services = [
                    {
                        "service": service,
                        "rr_ip": rr_ip,
                        "ports": ["80/tcp"],
                        "backends": [found[f"{service}.instance.0"]],
                    }
                    for service, _worker, rr_ip in TARGETS.values()
                ]
                for host in bed.hosts:
                    bed.module(host, "grove.edge.service_address", {"services": services})
                results = {}
                for name, (service, worker, rr_ip) in TARGETS.items():
                    instance = f"{service}.instance.0"
                    bed.exec_in(
                        worker,
                        instance,
                        f"dd if=/dev/zero of=/usr/share/nginx/html/big bs=1M count={BIG_FILE_MB}",
                    )
                    curl_loop(bed, f"http://{rr_ip}/", 20, "%{http_code}")  # warm up both paths
                    curl_loop(bed, f"http://{found[instance]}/", 20, "%{http_code}")
                    results[name] = measure(bed, found[instance], rr_ip, requests)
            finally:
                os.unlink(handle.name)
            report(results, requests)
        finally:
            run([str(BIN / "grove"), "testbed", "down"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
