"""Deployments through `grove api` on the local test bed (1 cluster of 2 workers): a live API process
running playbooks/deploy.yml through ansible-runner, real SSH, containerd and CNI on the workers.

Deploy latency: POST /api/service/{id}/instance until GET /api/service/{id} shows the instance
RUNNING (polled every 50 ms), one request after another, with the nginx image already on both
workers. Next to it, in the same loop: the same container started by hand on the same worker over
ONE fresh SSH command (`ip netns add`, the CNI bridge plugin with host-local IPAM on a bench network
of its own, `ctr run -d` with the same limits), and a trivial `ansible-playbook` run (one play, one
ping on both workers, fresh SSH connections like each API job's), the floor of a playbook-per-job
design. The profile splits each deploy by the job's own event times (GET /api/jobs/{id}).

The API runs with its defaults except GROVE_FACTS_INTERVAL_SECONDS=3600 (no periodic facts run lands
inside a measurement) and GROVE_STOP_TIMEOUT=2.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import live, procs
from benchmarks.harness import Figure, Series, percentile

SECTION = "Deploy latency (grove api on the test bed)"
BURST = "Burst (grove api on the test bed)"
FOOTPRINT = "Footprint"
OPTIMISED = "Optimisations (before/after, same run)"
# Each optimisation of the API's runs: (name, settings before, settings after). The after side is
# what `grove api` does by default; both are measured in the same run, requests alternating.
OPTIMISATIONS = (
    ("Mitogen strategy", {"GROVE_MITOGEN": "false"}, {"GROVE_MITOGEN": "true"}),
    (
        "batching: a lone request starts after 0.15 s, not 0.5 s",
        {"GROVE_JOB_BATCH_SECONDS": "0.5", "GROVE_JOB_BATCH_QUIET_SECONDS": "0.5"},
        {},
    ),
)
INTROS = {
    OPTIMISED: (
        "Each optimisation of the API's runs measured both ways in this run: one live API per "
        "setting on the same test bed, deploy requests alternating between them (each until RUNNING, "
        "then its job's end), so every variant sees the same noise. The measured side is the setting "
        "`grove api` uses by default, the baseline the setting before the optimisation; a ratio "
        "below 1 is the gain. The burst before/after takes the burst section's rounds as the measured "
        "side. Earlier changes whose gain was measured once (by hand, recorded in their commit "
        "messages) are listed below the table."
    ),
    BURST: (
        "N instance requests sent at once (one thread each) for 4 nginx services sized so that all "
        "fit on the 2 workers: time from the first request until GET shows all of them RUNNING, and "
        "how many ansible-playbook runs it took (distinct runs seen among the processes, sampled every "
        "0.1 s). The baseline starts the same N containers by hand: one fresh SSH command per worker, "
        "both at once, each starting its half as the deploy latency's raw start does. Each repetition "
        "starts from empty workers."
    ),
    FOOTPRINT: (
        "Resident memory. Workers: every process in each worker host's PID namespace, sampled when no "
        "job runs, summed over both workers and sorted into containerd, its shims, the instances, sshd "
        "(listener), the test bed's init (it stands in for the host's own init), and what Grove leaves: "
        "the supervisor that keeps containerd running on hosts without systemd (the containerd role's "
        "`supervised` mode), SSH sessions held open for the controller, and anything else (the goal: "
        "nothing). API: RSS of the `grove api` process (1 uvicorn worker, the default) when idle "
        "(sampled after each deploy job finished) next to a bare uvicorn+FastAPI process serving one "
        "route (the framework's floor); and at the peak of the burst, the API process alone and the "
        "API with every process of its runs (ansible-playbook, its forked workers, ssh), as PSS so that "
        "pages shared between forks count once."
    ),
}
IMAGE = "docker.io/library/nginx:latest"
MEMORY_MB = 16
BENCH_NETWORK = "grovebench"
BENCH_BRIDGE = "grovebench0"
GATE_RATIO = 10.0
BURST_GATE_S = 30.0
BURST_GATE_RUNS = 10
API_IDLE_GATE_MB = 150.0

# One SSH command: a network namespace attached with the CNI bridge plugin, then `ctr run -d`.
RAW_START = r"""
set -e
conf=$1; mem=$2; cpus=$3; image=$4; shift 4
for dir in /usr/lib/cni /opt/cni/bin; do [ -x "$dir/bridge" ] && break; done
mkdir -p /var/log/grove
for id in "$@"; do
  ip netns add "$id"
  printf '%s' "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID="$id" CNI_NETNS="/var/run/netns/$id" \
    CNI_IFNAME=eth0 CNI_PATH="$dir" "$dir/bridge" >/dev/null
  ctr -n grove run -d --with-ns "network:/var/run/netns/$id" --memory-limit "$mem" --cpus "$cpus" \
    --label grove.bench=raw --log-uri "file:///var/log/grove/$id.log" "$image" "$id"
done
"""
RAW_REMOVE = r"""
conf=$1; shift
for dir in /usr/lib/cni /opt/cni/bin; do [ -x "$dir/bridge" ] && break; done
for id in "$@"; do
  ctr -n grove tasks delete --force "$id" >/dev/null 2>&1
  ctr -n grove containers delete "$id" >/dev/null 2>&1
  printf '%s' "$conf" | CNI_COMMAND=DEL CNI_CONTAINERID="$id" CNI_NETNS="/var/run/netns/$id" \
    CNI_IFNAME=eth0 CNI_PATH="$dir" "$dir/bridge" >/dev/null 2>&1
  ip netns delete "$id" 2>/dev/null
  rm -f "/var/log/grove/$id.log"
done
true
"""
TRIVIAL_PLAYBOOK = """\
- name: Trivial
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""
BARE_SERVER = """\
import sys
from fastapi import FastAPI
import uvicorn
app = FastAPI()
@app.get("/")
def root():
    return {"ok": True}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _nginx(name: str, vcpus: float) -> dict:
    return {
        "microservice_name": name,
        "microservice_namespace": "bench",
        "virtualization": "container",
        "cmd": [],
        "memory": MEMORY_MB,
        "vcpus": vcpus,
        "code": IMAGE,
    }


def _descriptor(app: str, services: list[dict]) -> dict:
    return {
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [
            {
                "applicationID": "",
                "application_name": app,
                "application_namespace": "bench",
                "application_desc": "benchmark",
                "microservices": services,
            }
        ],
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# -- the workers, by hand --------------------------------------------------------------------------
class Workers:
    def __init__(self, inventory: Path) -> None:
        self.inventory = inventory
        self.hosts = live.hosts(inventory)
        self.raw_count = 0

    def ssh(self, host: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        """ONE fresh SSH connection (no shared master) running `script` with bash."""
        hostvars = self.hosts[host]
        argv = ["ssh", "-i", hostvars["ansible_ssh_private_key_file"]]
        argv += shlex.split(hostvars.get("ansible_ssh_common_args", ""))
        argv += ["-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none"]
        argv += ["-o", "LogLevel=ERROR", f"root@{hostvars['ansible_host']}"]
        command = " ".join(shlex.quote(a) for a in ["bash", "-c", script, "bench", *args])
        return subprocess.run(
            [*argv, "--", command], capture_output=True, text=True, timeout=300, check=False
        )

    def bench_network(self, host: str) -> str:
        # The host's instance subnet is 10.18.N.0/24; the bench network takes 10.18.(100+N).0/24.
        octets = self.hosts[host]["grove_instance_subnet"].split("/")[0].split(".")
        subnet = f"10.18.{100 + int(octets[2])}.0/24"
        gateway = f"10.18.{100 + int(octets[2])}.1"
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": BENCH_NETWORK,
                "type": "bridge",
                "bridge": BENCH_BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0", "gw": gateway}],
                },
            }
        )

    def raw_start(self, host: str, count: int, vcpus: float) -> tuple[float, list[str]]:
        ids = [f"bench-raw-{self.raw_count + i}" for i in range(count)]
        self.raw_count += count
        conf = self.bench_network(host)
        start = time.perf_counter()
        proc = self.ssh(host, RAW_START, conf, str(MEMORY_MB * 1024 * 1024), f"{vcpus:g}", IMAGE, *ids)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            self.raw_remove(host, ids)
            raise RuntimeError(f"raw start on {host} failed: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return elapsed, ids

    def raw_remove(self, host: str, ids: list[str]) -> None:
        self.ssh(host, RAW_REMOVE, self.bench_network(host), *ids)

    def trivial_playbook(self, workdir: Path) -> float:
        """A one-ping playbook on every worker with fresh SSH connections (its own control path dir,
        as every ansible-runner job gets); its SSH masters are stopped afterwards, untimed."""
        playbook = workdir / "trivial.yml"
        if not playbook.exists():
            playbook.write_text(TRIVIAL_PLAYBOOK)
        control = Path(tempfile.mkdtemp(prefix="cp-", dir=workdir))
        env = {
            **live.ansible_env(),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
        }
        argv = [str(live.BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook)]
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=live.REPO, check=False)
        elapsed = time.perf_counter() - start
        procs.stop(procs.with_cmdline(f"ssh: {control}/"))
        if proc.returncode != 0:
            raise RuntimeError(f"trivial playbook failed: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return elapsed

    # -- what runs on a worker -------------------------------------------------------------------
    def namespaces(self) -> dict[str, str]:
        from grove.testbed import bed  # noqa: PLC0415 - the test bed's own record of its hosts

        state = bed.read_state() or {}
        found = {}
        for host in state.get("hosts", []):
            below = procs.descendants(host["unshare_pid"])
            if below:
                found[host["name"]] = procs.pid_namespace(below[0].pid)
        return found

    def footprint(self) -> dict[str, float]:
        """RSS in MB per category, summed over the workers' PID namespaces."""
        namespaces = set(self.namespaces().values())
        everything = procs.every()
        mine = [p for p in everything if procs.pid_namespace(p.pid) in namespaces]
        shims = {p.pid for p in mine if p.name.startswith("containerd-shim")}
        # The instances run in PID namespaces of their own, below their shims.
        for shim in shims:
            mine += procs.descendants(shim, everything)
        by_pid = {p.pid: p for p in mine}
        containerds = {p.pid for p in mine if p.name == "containerd"}
        supervisors = {by_pid[pid].ppid for pid in containerds if by_pid[pid].ppid in by_pid}
        totals: dict[str, float] = {}
        for proc in by_pid.values():
            category = _category(proc, by_pid, shims, containerds, supervisors)
            totals[category] = totals.get(category, 0.0) + procs.memory_mb(proc.pid)["rss"]
        return totals


def _category(
    proc: procs.Proc,
    by_pid: dict[int, procs.Proc],
    shims: set[int],
    containerds: set[int],
    supervisors: set[int],
) -> str:
    if proc.pid in containerds:
        return "containerd"
    if proc.pid in shims:
        return "containerd shims"
    if proc.pid in supervisors:
        return "Grove: containerd's supervisor"
    parent = by_pid.get(proc.ppid)
    while parent is not None:
        if parent.pid in shims:
            return "instances"
        parent = by_pid.get(parent.ppid)
    if "hostinit" in proc.cmdline:
        return "test bed init"
    if proc.name == "sshd" and " -D " in f" {proc.cmdline} ":
        return "sshd listener"
    if proc.name == "sshd":
        return "Grove: SSH sessions held open"
    return "Grove: anything else"


# -- samplers ------------------------------------------------------------------------------------------
@dataclass
class Peak:
    """Samples the API's memory and the playbook runs under way until stopped."""

    api: live.Api
    interval: float = 0.1
    api_rss: float = 0.0
    total_pss: float = 0.0
    runs: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        api_pids = self.api.pids()
        run_pids = self.api.run_pids()
        for pid in run_pids:
            proc = procs.info(pid)
            if proc is not None and "ansible-playbook" in proc.cmdline:
                environ = Path(f"/proc/{pid}/environ")
                with contextlib.suppress(OSError):
                    for item in environ.read_bytes().split(b"\0"):
                        if item.startswith(f"{live.RUN_MARKER}=".encode()):
                            self.runs.add(item.decode(errors="replace"))
        memory = [procs.memory_mb(pid) for pid in {*api_pids, *run_pids}]
        self.api_rss = max(self.api_rss, sum(procs.memory_mb(pid)["rss"] for pid in api_pids))
        self.total_pss = max(self.total_pss, sum(m["pss"] for m in memory))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    @contextlib.contextmanager
    def running(self) -> Iterator[Peak]:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def _bare_server_rss(workdir: Path) -> float:
    script = workdir / "bare_server.py"
    script.write_text(BARE_SERVER)
    port = live.free_port()
    proc = subprocess.Popen(
        [str(live.BIN / "python"), str(script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        import httpx  # noqa: PLC0415

        def answers() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{port}/", trust_env=False).status_code == 200
            return False

        live.poll(answers, 60, "the bare uvicorn server answering", 0.1)
        return procs.memory_mb(proc.pid)["rss"]
    finally:
        procs.stop([proc.pid])
        proc.wait(10)


# -- through the API -------------------------------------------------------------------------------------
def _instance(api: live.Api, service: str, number: int) -> dict | None:
    for instance in api.call("GET", f"/api/service/{service}")["instance_list"]:
        if instance["instance_number"] == number:
            return instance
    return None


def _wait_running(api: live.Api, service: str, number: int, timeout: float = 300) -> dict:
    def check() -> dict | None:
        instance = _instance(api, service, number)
        if instance is None or instance["status"] in live.IN_PROGRESS:
            return None
        if instance["status"] != "RUNNING":
            job = api.call("GET", f"/api/jobs/{instance['job_id']}") if instance.get("job_id") else {}
            raise RuntimeError(f"instance {number} of {service}: {instance['status']}: {instance} {job}")
        return instance

    return live.poll(check, timeout, f"instance {number} of {service} RUNNING")


def _wait_job_done(api: live.Api, job_id: str, timeout: float = 300) -> dict:
    return live.poll(
        lambda: (job := api.call("GET", f"/api/jobs/{job_id}"))["state"] in ("succeeded", "failed") and job,
        timeout,
        f"job {job_id} finished",
        0.1,
    )


def _wait_idle(api: live.Api, timeout: float = 300) -> None:
    live.poll(lambda: not api.run_pids() or None, timeout, "no playbook run under way", 0.1)


def _delete_app(api: live.Api, app_id: str, timeout: float = 600) -> float:
    start = time.perf_counter()
    api.call("DELETE", f"/api/application/{app_id}")
    assert api.client is not None
    live.poll(
        lambda: api.client.get(f"/api/application/{app_id}", headers=api.headers).status_code == 404,
        timeout,
        f"application {app_id} removed",
        0.2,
    )
    return time.perf_counter() - start


REQUEST_PHASE = (
    "request until the first play starts (batch window, ansible-runner, ansible-playbook start-up)"
)
SEEN_PHASE = "RUNNING recorded until the client's poll sees it"


def _phases(job: dict, instance: dict, posted: float, seen: float) -> dict[str, float]:
    """Where one deploy's time went, from the job's event times and the instance's status history."""
    plays = [
        (e["message"], _epoch(e["time"])) for e in job["events"] if e["event"] == "playbook_on_play_start"
    ]
    history = instance.get("status_history") or []
    running = next((h["timestamp"] for h in reversed(history) if h["status"] == "RUNNING"), seen)
    phases: dict[str, float] = {}
    if plays:
        phases[REQUEST_PHASE] = plays[0][1] - posted
    started = [(name, at) for name, at in plays if at < running]
    for index, (name, at) in enumerate(started):
        last = index + 1 == len(started)
        end = running if last else started[index + 1][1]
        phases[f"play {name!r}" + (" until RUNNING" if last else "")] = end - at
    phases[SEEN_PHASE] = max(0.0, seen - running)
    return phases


def _latency(api: live.Api, workers: Workers, workdir: Path, count: int) -> tuple[list[Figure], dict]:
    app = api.call("POST", "/api/application", _descriptor("latency", [_nginx("nginx", 0.05)]))
    app = next(a for a in app if a["application_name"] == "latency")
    service = app["microservices"][0]
    # Warm-up, not measured: the image on both workers, the API's first run, a raw start each.
    warm = [api.call("POST", f"/api/service/{service}/instance") for _ in range(2)]
    for answer in warm:
        _wait_running(api, service, answer["instance_number"])
        _wait_job_done(api, answer["job_id"])
    for host in workers.hosts:
        _elapsed, ids = workers.raw_start(host, 1, 0.05)
        workers.raw_remove(host, ids)
    workers.trivial_playbook(workdir)
    deploy, raw, trivial = [], [], []
    phases: dict[str, list[float]] = {}
    api_idle, worker_footprint = [], []
    for _ in range(count):
        _wait_idle(api)
        posted = time.time()
        start = time.perf_counter()
        answer = api.call("POST", f"/api/service/{service}/instance")
        instance = _wait_running(api, service, answer["instance_number"])
        deploy.append(time.perf_counter() - start)
        seen = time.time()
        job = _wait_job_done(api, answer["job_id"])
        if job["state"] != "succeeded":
            raise RuntimeError(f"deploy job failed: {job['status_detail']}")
        for name, seconds in _phases(job, instance, posted, seen).items():
            phases.setdefault(name, []).append(seconds)
        _wait_idle(api)
        api_idle.append(sum(procs.memory_mb(pid)["rss"] for pid in api.pids()))
        worker_footprint.append(workers.footprint())
        elapsed, ids = workers.raw_start(instance["worker_id"], 1, 0.05)
        raw.append(elapsed)
        workers.raw_remove(instance["worker_id"], ids)
        trivial.append(workers.trivial_playbook(workdir))
    measured = Series(f"POST instance until RUNNING, {count} one after another", "s", deploy)
    raw_series = Series("ctr run into a CNI-attached netns, one SSH command", "s", raw)
    trivial_series = Series("trivial ansible-playbook (1 ping on both workers, fresh SSH)", "s", trivial)
    gate = f"<= {GATE_RATIO:g}x the raw start"
    figures = [
        Figure(
            SECTION,
            measured,
            raw_series,
            gate=gate,
            gate_passed=measured.median <= GATE_RATIO * raw_series.median,
        ),
        Figure(SECTION, measured, trivial_series),
    ]
    total = measured.median
    lines = [
        f"{name}: {statistics.median(values):.2f} s ({100 * statistics.median(values) / total:.0f}%)"
        for name, values in phases.items()
        if len(values) >= len(deploy) // 2
    ]
    figures[-1].notes.append("Profile of a deploy (median of each phase): " + "; ".join(lines) + ".")
    app_id = app["applicationID"]
    return figures, {"app": app_id, "api_idle": api_idle, "workers": worker_footprint}


def _burst_round(api: live.Api, name: str, specs: list[dict], per_service: int) -> dict[str, Any]:
    """One burst from empty workers; removes its application afterwards."""
    app = api.call("POST", "/api/application", _descriptor(name, specs))
    app = next(a for a in app if a["application_name"] == name)
    targets = [sid for sid in app["microservices"] for _ in range(per_service)]
    _wait_idle(api)
    client, headers = api.client, api.headers
    assert client is not None

    def all_running() -> bool:
        listed = api.call("GET", f"/api/services/{app['applicationID']}")
        statuses = [i["status"] for s in listed for i in s["instance_list"]]
        bad = [s for s in statuses if s not in live.IN_PROGRESS and s != "RUNNING"]
        if bad:
            raise RuntimeError(f"burst: instances ended {bad}")
        return len(statuses) == len(targets) and all(s == "RUNNING" for s in statuses)

    peak = Peak(api)
    with peak.running(), ThreadPoolExecutor(len(targets)) as pool:
        start = time.perf_counter()
        answers = list(
            pool.map(lambda sid: client.post(f"/api/service/{sid}/instance", headers=headers), targets)
        )
        failed = [a.text for a in answers if a.status_code != 200]
        if failed:
            raise RuntimeError(f"burst requests failed: {failed}")
        live.poll(all_running, 600, "every burst instance RUNNING", 0.2)
        elapsed = time.perf_counter() - start
        _wait_idle(api)
    jobs = [api.call("GET", f"/api/jobs/{a.json()['job_id']}") for a in answers]
    return {
        "elapsed": elapsed,
        "runs_seen": len(peak.runs),
        "runs_recorded": len({job["run"]["run_id"] for job in jobs}),
        "api_peak": peak.api_rss,
        "total_peak": peak.total_pss,
        "delete": _delete_app(api, app["applicationID"]),
        "count": len(targets),
    }


def _raw_burst(workers: Workers, count: int) -> float:
    """The same containers by hand: split over the workers, one SSH command each, all at once."""
    hosts = list(workers.hosts)
    shares = [count // len(hosts) + (1 if i < count % len(hosts) else 0) for i in range(len(hosts))]
    with ThreadPoolExecutor(len(hosts)) as pool:
        begin = time.perf_counter()
        started = list(
            pool.map(lambda pair: workers.raw_start(pair[0], pair[1], 0.01), zip(hosts, shares, strict=True))
        )
        elapsed = time.perf_counter() - begin
    for host, (_seconds, ids) in zip(hosts, started, strict=True):
        workers.raw_remove(host, ids)
    return elapsed


def _burst(api: live.Api, workers: Workers, size: int, repeat: int) -> tuple[list[Figure], dict]:
    services = 4 if size >= 4 else 1
    # Small enough that all fit on 2 workers.
    specs = [_nginx(f"web{n}", 0.01) for n in range(services)]
    rounds = []
    raw = []
    for round_ in range(repeat):
        rounds.append(_burst_round(api, f"burst{round_}", specs, size // services))
        _wait_idle(api)
        raw.append(_raw_burst(workers, rounds[-1]["count"]))
    size = rounds[0]["count"]
    runs_seen = [r["runs_seen"] for r in rounds]
    measured = Series(f"{size} requests at once until all RUNNING", "s", [r["elapsed"] for r in rounds])
    baseline = Series(f"{size} containers by hand (1 SSH command per worker, at once)", "s", raw)
    runs = Series(f"{size} requests at once: ansible-playbook runs", "runs", [float(n) for n in runs_seen])
    runs_ok = max(runs_seen) <= BURST_GATE_RUNS
    passed = measured.median < BURST_GATE_S and runs_ok
    gate = f"< {BURST_GATE_S:g} s and <= {BURST_GATE_RUNS} runs"
    figures = [
        Figure(BURST, measured, baseline, gate=gate, gate_passed=passed),
        Figure(BURST, runs, None, gate=f"<= {BURST_GATE_RUNS} runs", gate_passed=runs_ok),
    ]
    figures[-1].notes.append(
        f"Runs recorded by the API for the {size} jobs (deploy runs only): "
        f"{[r['runs_recorded'] for r in rounds]}; ansible-playbook runs seen among the processes "
        f"(deploy and facts): {runs_seen}. Removing the {size} instances afterwards (DELETE the "
        f"application until it is gone): median {statistics.median(r['delete'] for r in rounds):.1f} s."
    )
    return figures, {
        "elapsed": [r["elapsed"] for r in rounds],
        "api_peak": [r["api_peak"] for r in rounds],
        "total_peak": [r["total_peak"] for r in rounds],
    }


def _footprint(workdir: Path, latency: dict, burst: dict) -> list[Figure]:
    categories = sorted({name for sample in latency["workers"] for name in sample})
    series = {name: [sample.get(name, 0.0) for sample in latency["workers"]] for name in categories}
    containerd = Series("containerd (both workers)", "MB", series.get("containerd", [0.0]))
    grove = [name for name in categories if name.startswith("Grove:")]
    figures = []
    for name in grove:
        figures.append(
            Figure(FOOTPRINT, Series(f"workers, {name[7:]} (both)", "MB", series[name]), containerd)
        )
    total = [sum(sample.get(name, 0.0) for name in grove) for sample in latency["workers"]]
    figures.append(
        Figure(FOOTPRINT, Series("workers, everything Grove leaves (both)", "MB", total), containerd)
    )
    others = {
        name: statistics.median(series[name])
        for name in categories
        if not name.startswith("Grove:") and name != "containerd"
    }
    figures[-1].notes.append(
        "Also on the workers (median, MB, both): "
        + ", ".join(f"{name} {value:.0f}" for name, value in others.items())
        + ". The supervisor stands in for systemd and exists only where the host has no service "
        "manager; SSH sessions stay while the controller keeps a master connection open (ControlPersist)."
    )
    bare = _bare_server_rss(workdir)
    idle = Series("grove api idle (1 worker), RSS", "MB", latency["api_idle"])
    figures.append(
        Figure(
            FOOTPRINT,
            idle,
            Series("bare uvicorn + FastAPI, one route, RSS", "MB", [bare]),
            gate=f"< {API_IDLE_GATE_MB:g} MB idle",
            gate_passed=percentile(idle.samples, 0.95) < API_IDLE_GATE_MB,
        )
    )
    if burst["api_peak"]:
        figures.append(
            Figure(FOOTPRINT, Series("grove api at the burst's peak, RSS", "MB", burst["api_peak"]), idle)
        )
        figures.append(
            Figure(
                FOOTPRINT,
                Series("grove api + its runs' processes at the burst's peak, PSS", "MB", burst["total_peak"]),
                idle,
            )
        )
    return figures


def _env_key(env: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "defaults"


def _ab_api(stack: contextlib.ExitStack, path: Path, inventory: Path, env: dict[str, str], name: str):
    api = stack.enter_context(live.Api(path, inventory=inventory, env=env))
    live.poll(lambda: api.call("GET", "/api/clusters/active"), 300, "the first cluster facts", 0.2)
    _wait_idle(api)
    answer = api.call("POST", "/api/application", _descriptor(name, [_nginx("nginx", 0.05)]))
    app = next(a for a in answer if a["application_name"] == name)
    service = app["microservices"][0]
    warm = api.call("POST", f"/api/service/{service}/instance")
    _wait_running(api, service, warm["instance_number"])
    _wait_job_done(api, warm["job_id"])
    return api, app["applicationID"], service


def _optimisations(
    inventory: Path, workdir: Path, base: dict[str, str], *, count: int, burst: dict, size: int
) -> list[Figure]:
    configs: dict[str, dict[str, str]] = {}
    for _name, before, after in OPTIMISATIONS:
        configs.setdefault(_env_key(before), before)
        configs.setdefault(_env_key(after), after)
    samples: dict[str, list[float]] = {key: [] for key in configs}
    mitogen_off = _env_key(OPTIMISATIONS[0][1])
    before_burst = []
    with contextlib.ExitStack() as stack:
        apis = {
            key: _ab_api(stack, workdir / f"api-ab{index}", inventory, {**base, **env}, f"ab{index}")
            for index, (key, env) in enumerate(configs.items())
        }
        for _ in range(count):
            for key, (api, _app, service) in apis.items():
                _wait_idle(api)
                start = time.perf_counter()
                answer = api.call("POST", f"/api/service/{service}/instance")
                _wait_running(api, service, answer["instance_number"])
                samples[key].append(time.perf_counter() - start)
                _wait_job_done(api, answer["job_id"])
        for api, app_id, _service in apis.values():
            _delete_app(api, app_id)
            _wait_idle(api)
        if burst.get("elapsed"):
            specs = [_nginx(f"web{n}", 0.01) for n in range(4 if size >= 4 else 1)]
            before_burst.append(
                _burst_round(apis[mitogen_off][0], "abburst", specs, size // len(specs))["elapsed"]
            )
    figures = []
    for name, before, after in OPTIMISATIONS:
        measured = Series(f"{name}: deploy latency ({_env_key(after)})", "s", samples[_env_key(after)])
        baseline = Series(f"before ({_env_key(before)})", "s", samples[_env_key(before)])
        figures.append(Figure(OPTIMISED, measured, baseline))
    if before_burst:
        figures.append(
            Figure(
                OPTIMISED,
                Series(f"Mitogen strategy: {size} requests at once until all RUNNING", "s", burst["elapsed"]),
                Series(f"before ({mitogen_off})", "s", before_burst),
            )
        )
    figures[-1].notes += EARLIER_CHANGES
    return figures


# Changes measured when they went in (their commit messages have the details).
EARLIER_CHANGES = [
    "HTTP layer: uvloop and httptools (uvicorn uses them when installed): the API section's "
    "'h11 + asyncio' rows are the same server without them, in this run.",
    "SSH: runs share one control directory in the API's data dir (ansible-runner 2.4 gives runs "
    "none of their own: they used ~/.ansible/cp, shared with root's own ansible runs, and left their "
    "masters running after `grove api` stopped). Speed unchanged: connections were already reused "
    "between runs within ControlPersist's 60 s (a trivial playbook costs 1.07 s warm vs 1.28 s with "
    "fresh SSH, median of 6); the masters now close when the API stops. With Mitogen no connection "
    "outlives a run (Footprint).",
]


def _measure(inventory: Path, quick: bool) -> list[Figure]:
    count = 2 if quick else 20
    size, repeat = (4, 1) if quick else (100, 3)
    workers = Workers(inventory)
    with tempfile.TemporaryDirectory(prefix="grove-bench-deploy-") as tmp:
        workdir = Path(tmp)
        env = {"GROVE_FACTS_INTERVAL_SECONDS": "3600", "GROVE_STOP_TIMEOUT": "2"}
        with live.Api(workdir / "api", inventory=inventory, env=env) as api:
            live.poll(lambda: api.call("GET", "/api/clusters/active"), 300, "the first cluster facts", 0.2)
            _wait_idle(api)
            figures, latency = _latency(api, workers, workdir, count)
            _delete_app(api, latency["app"])
            _wait_idle(api)
            burst_figures, burst = _burst(api, workers, size, repeat)
            figures += burst_figures
        figures += _footprint(workdir, latency, burst)
        figures += _optimisations(inventory, workdir, env, count=1 if quick else 8, burst=burst, size=size)
    return figures


def run(quick: bool = False, inventory: Path | None = None) -> list[Figure]:
    """On the given test bed (its owner holds the lock), or on a fresh one of 1 cluster x 2 workers."""
    if inventory is not None:
        return _measure(inventory, quick)
    with live.testbed(1, 2) as fresh:
        return _measure(fresh, quick)
