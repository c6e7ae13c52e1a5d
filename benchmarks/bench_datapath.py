"""One client container (curl) on worker c1w1 of the test bed talks to two nginx instances: one on
the other worker (across the VXLAN overlay), one on its own worker (same bridge, where the service
address needs the hairpin masquerade). For each, the same client in the same run alternates,
batch by batch, between the instance address (the baseline) and the service's round-robin address
(nftables DNAT): requests on a new TCP connection each (curl's time_total: connect, request,
response), and downloads of a large file (curl's speed_download). All traffic stays between the
test bed's network namespaces.
"""

# Takes the test bed lock for its whole run, like the test suite, and leaves the test bed down:
#     sudo .venv/bin/python -m benchmarks.bench_datapath [requests per address]
#     sudo .venv/bin/python -m benchmarks.run --only bench_datapath --output FILE

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.harness import Figure, Series, machine, markdown, text_table
from benchmarks.live import testbed_lock

SECTION = "Service address vs. instance address (data path on the test bed)"
REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
ENV = {
    **os.environ,
    "PATH": f"{BIN}:{os.environ['PATH']}",
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
    "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
}
APP = "benchnet.test"
CLIENT = f"{APP}.client.test.instance.0"
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
        spec:
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


def run_command(
    argv: list[str], *, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
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
        return run_command(argv).stdout

    def module(self, host: str, module: str, args: dict) -> None:
        run_command([str(BIN / "ansible"), "-i", self.inventory, host, "-m", module, "-a", json.dumps(args)])

    def shell(self, host: str, argv: list[str]) -> str:
        ssh = [
            "ssh", "-i", self.key, *self.ssh_options, "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            f"root@{self.hosts[host]['ansible_host']}", "--",
        ]  # fmt: skip
        return run_command([*ssh, *[shlex.quote(a) for a in argv]]).stdout

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
        out = run_command(
            [str(BIN / "ansible"), "-i", bed.inventory, host, "-m", "grove.edge.node_info"]
        ).stdout
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


@dataclass(frozen=True)
class Counts:
    requests: int = 500  # per address, new connection each, in interleaved batches
    batch: int = 50
    downloads: int = 9  # per address
    file_mb: int = 256


QUICK = Counts(requests=5, batch=5, downloads=1, file_mb=4)


def measure(bed: Bed, direct: str, service: str, counts: Counts) -> dict:
    """Same client, same run: the two addresses alternate, batch by batch, so drift hits both."""
    latency: dict[str, list[float]] = {"direct": [], "service": []}
    for _ in range(max(1, counts.requests // counts.batch)):
        for kind, address in (("direct", direct), ("service", service)):
            latency[kind] += curl_loop(
                bed, f"http://{address}/", counts.batch, "%{time_total}", "-H 'Connection: close'"
            )
    speed: dict[str, list[float]] = {"direct": [], "service": []}
    for _ in range(counts.downloads):
        for kind, address in (("direct", direct), ("service", service)):
            speed[kind] += curl_loop(bed, f"http://{address}/big", 1, "%{speed_download}")
    return {"latency": latency, "speed": speed}


def figures(results: dict[str, dict], counts: Counts) -> list[Figure]:
    found = []
    for name, result in results.items():
        latency, speed = result["latency"], result["speed"]
        found.append(
            Figure(
                SECTION,
                Series(
                    f"{name}: request via the service address", "ms", [v * 1000 for v in latency["service"]]
                ),
                Series("via the instance address", "ms", [v * 1000 for v in latency["direct"]]),
                notes=[f"{name}: {len(latency['service'])} requests per address, a new TCP connection each."],
            )
        )
        found.append(
            Figure(
                SECTION,
                Series(
                    f"{name}: {counts.file_mb} MiB download via the service address",
                    "Mbit/s",
                    [v * 8 / 1e6 for v in speed["service"]],
                ),
                Series("via the instance address", "Mbit/s", [v * 8 / 1e6 for v in speed["direct"]]),
                better="higher",
            )
        )
    return found


def run(quick: bool = False, counts: Counts | None = None) -> list[Figure]:
    """Every figure of the benchmark; quick: a handful of samples, to check the harness only."""
    counts = QUICK if quick else (counts or Counts())
    with testbed_lock():
        run_command([str(BIN / "grove"), "testbed", "down"])
        try:
            inventory = run_command([str(BIN / "grove"), "testbed", "up"]).stdout.strip().splitlines()[-1]
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
                        f"dd if=/dev/zero of=/usr/share/nginx/html/big bs=1M count={counts.file_mb}",
                    )
                    curl_loop(bed, f"http://{rr_ip}/", 20, "%{http_code}")  # warm up both paths
                    curl_loop(bed, f"http://{found[instance]}/", 20, "%{http_code}")
                    results[name] = measure(bed, found[instance], rr_ip, counts)
            finally:
                os.unlink(handle.name)
        finally:
            run_command([str(BIN / "grove"), "testbed", "down"], check=False)
    return figures(results, counts)


def main() -> int:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else Counts().requests
    produced = run(counts=Counts(requests=requests))
    print(text_table(produced))
    print()
    print(markdown(produced, machine(), {SECTION: " ".join((__doc__ or "").split())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
