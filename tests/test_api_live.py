"""`grove api` live on the test bed (real uvicorn process, ansible-runner, deploy.yml, containerd):
the seed's walkthrough over HTTP, hostile strings, a kill during a job, a burst of requests, and
Oakestra's own Python CLI (oak-cli) against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers.instance_checks import wait_http
from test_instance import traces
from testbed_support import BIN, REPO, Testbed, ensure_containerd

pytestmark = pytest.mark.testbed

# oak-cli always talks to port 10000 (Oakestra's); the API listens on loopback only.
PORT = 10000
SEED = json.loads((REPO / "examples" / "clientsrvr.json").read_text())
IN_PROGRESS = {"REQUESTED", "CLUSTER_SCHEDULED", "NODE_SCHEDULED", "CREATING", "CREATED"}
CAPACITY = {"NO_WORKER_CAPACITY", "NoActiveClusterWithCapacity", "TargetClusterNoCapacity"}
OAK_CLI = "oak-cli==0.5.5"
# oak-cli's runtime dependencies, as its pyproject pins them, without the `ansible` community
# bundle (only its installer commands use it; it is 500 MB).
OAK_CLI_DEPS = [
    "requests>=2.32.3,<3",
    "pydantic>=2.6.4,<3",
    "icecream>=2.1.3,<3",
    "typer>=0.15.4,<0.16",
    "rich-pixels>=3.0.1,<4",
    "psutil>=5.9.8,<6",
    "oakestra-utils>=0.2.0,<0.3",
    "ansible-runner>=2.4,<3",
]
NO_PROXY_ENV = {
    "http_proxy": "",
    "https_proxy": "",
    "HTTP_PROXY": "",
    "HTTPS_PROXY": "",
    "no_proxy": "127.0.0.1,localhost",
    "NO_PROXY": "127.0.0.1,localhost",
}


def poll(check, timeout: float, what: str, interval: float = 0.5):
    """Call `check` until it returns something truthy; fail with `what` and the last value at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


class LiveApi:
    """`grove api` as a real process on 127.0.0.1:10000, started and stopped by its pid."""

    def __init__(self, bed: Testbed, data_dir: Path) -> None:
        self.bed = bed
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.log = data_dir / "api.log"
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", trust_env=False, timeout=60)
        self._token = ""
        self._token_at = 0.0

    def start(self) -> None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PORT)) == 0:
                raise AssertionError(f"port {PORT} is taken: stop whatever listens there (grove api?)")
        env = {
            **os.environ,
            **NO_PROXY_ENV,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "GROVE_STOP_TIMEOUT": "2",  # the curl image's sh ignores SIGTERM
            "GROVE_JOB_BATCH_SECONDS": "1",
            "GROVE_FACTS_INTERVAL_SECONDS": "120",
        }
        env.pop("GROVE_ADMIN_PASSWORD", None)
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "grove"),
                    "-v",
                    "api",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(PORT),
                    "--inventory",
                    str(self.bed.inventory),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        poll(self._ready, 60, f"grove api answering (log: {self.log})", 0.2)
        self._token = ""

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"grove api exited: {self.log.read_text()[-3000:]}")
        try:
            return self.client.get("/api/docs").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    @property
    def headers(self) -> dict[str, str]:
        if not self._token or time.monotonic() - self._token_at > 300:
            answer = self.client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"})
            assert answer.status_code == 200, answer.text
            self._token, self._token_at = answer.json()["token"], time.monotonic()
        return {"Authorization": f"Bearer {self._token}"}

    def get(self, path: str):
        answer = self.client.get(path, headers=self.headers)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.json()

    def post(self, path: str, body=None):
        answer = self.client.post(path, headers=self.headers, json=body)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.json()

    def create(self, descriptor: dict) -> dict:
        name = descriptor["applications"][0]["application_name"]
        return next(a for a in self.post("/api/application", descriptor) if a["application_name"] == name)

    def services(self, app: dict) -> list[dict]:
        return self.get(f"/api/services/{app['applicationID']}")

    def settled(self, app: dict) -> list[dict] | None:
        """The app's services once none of their instances is on its way any more."""
        services = self.services(app)
        if any(i["status"] in IN_PROGRESS for s in services for i in s["instance_list"]):
            return None
        return services

    def jobs_of(self, app: dict) -> str:
        """Every job's state and events, for failure messages."""
        lines = []
        for service in self.services(app):
            for instance in service["instance_list"]:
                if instance["job_id"]:
                    job = self.get(f"/api/jobs/{instance['job_id']}")
                    events = [
                        f"{e['task']}@{e['host']}: {e['result']} {e['message']}"
                        for e in job["events"]
                        if e["result"] in ("failed", "unreachable")
                    ]
                    lines.append(f"{job['job_id']} {job['state']} {job['status_detail']} {events}")
        return "\n".join(lines)

    def delete_and_wait(self, app: dict, timeout: float = 240) -> None:
        answer = self.client.delete(f"/api/application/{app['applicationID']}", headers=self.headers)
        assert answer.status_code == 200, answer.text
        poll(
            lambda: (
                self.client.get(f"/api/application/{app['applicationID']}", headers=self.headers).status_code
                == 404
            ),
            timeout,
            f"application {app['application_name']} removed",
        )
        prefix = f"{app['application_name']}.{app['application_namespace']}."
        for host in self.bed.hosts:
            node = self.bed.module(host, "grove.edge.node_info", {})["node"]
            assert [i["id"] for i in node["instances"] if i["id"].startswith(prefix)] == [], host


@pytest.fixture(scope="module")
def live(testbed_session, tmp_path_factory):
    bed = testbed_session(1, 2)
    ensure_containerd(bed)
    api = LiveApi(bed, tmp_path_factory.mktemp("grove-api"))
    api.start()
    try:
        yield api
    finally:
        api.stop()
        leftovers = [p for p in Path("/proc").glob("[0-9]*") if _cmdline(p).count(str(api.data_dir))]
        assert not leftovers, [_cmdline(p) for p in leftovers]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descriptor(name: str, services: list[dict] | None = None) -> dict:
    descriptor = json.loads(json.dumps(SEED))
    descriptor["applications"][0]["application_name"] = name
    if services is not None:
        descriptor["applications"][0]["microservices"] = services
    return descriptor


def _sleeper(name: str = "sleeper", **fields) -> dict:
    return {
        "microservice_name": name,
        "microservice_namespace": "test",
        "virtualization": "container",
        "code": "docker.io/curlimages/curl:latest",
        "cmd": ["sh", "-c", "tail -f /dev/null"],
        "memory": 32,
        "vcpus": 0.1,
        **fields,
    }


def test_the_seeds_walkthrough_over_http(live, testbed):
    # scripts/api-seed.sh does the seed's steps with curl (login, POST the descriptor, one instance
    # of each service, wait until they run); a dead proxy in its environment must not matter.
    dead = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "GROVE_API_URL": f"http://127.0.0.1:{PORT}",
        "http_proxy": dead,
        "https_proxy": dead,
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "no_proxy": "",
        "NO_PROXY": "",
    }
    proc = subprocess.run(
        [str(REPO / "scripts" / "api-seed.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    app = next((a for a in live.get("/api/applications") if a["application_name"] == "clientsrvr"), None)
    assert app is not None, proc.stdout + proc.stderr
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr + live.jobs_of(app)
        assert proc.stdout.strip().splitlines()[-1] == app["applicationID"]
        curl_id, nginx_id = app["microservices"]
        services = live.services(app)
        assert [s["status"] for s in services] == ["RUNNING", "RUNNING"]
        nginx = live.get(f"/api/service/{nginx_id}")
        instance = nginx["instance_list"][0]
        assert (instance["status"], instance["cluster_id"], instance["host_port"]) == (
            "RUNNING",
            "cluster1",
            6080,
        )
        assert (
            instance["publicip"]
            == instance["host_ip"]
            == live.bed.hosts[instance["worker_id"]]["ansible_host"]
        )
        assert f"http://{instance['host_ip']}:6080/" in proc.stdout
        page = wait_http(f"http://{instance['host_ip']}:6080/", contains="Welcome to nginx!")
        assert "<title>Welcome to nginx!</title>" in page
        client = live.get(f"/api/service/{curl_id}")["instance_list"][0]
        inside = live.bed.exec_in(
            client["worker_id"],
            "clientsrvr.test.curl.test.instance.0",
            "curl",
            "-s",
            f"http://{instance['host_ip']}:6080/",
        )
        assert "Welcome to nginx!" in inside.stdout
        # The seed's last step: the client reaches nginx at the RR_ip the API shows, and by name.
        assert nginx["RR_ip"].startswith("10.30.")
        assert instance["instance_ip"] == instance["namespace_ip"] == instance["address"]
        # api-seed.sh waited for the jobs, which route the address and write the names last.
        hosts = live.bed.exec_in(
            client["worker_id"], "clientsrvr.test.curl.test.instance.0", "cat", "/etc/hosts"
        )
        assert f"{nginx['RR_ip']}\tnginx.test.clientsrvr.test nginx" in hosts.stdout, hosts.stdout
        for url in (f"http://{nginx['RR_ip']}/", "http://nginx.test.clientsrvr.test/"):
            by_service = live.bed.exec_in(
                client["worker_id"],
                "clientsrvr.test.curl.test.instance.0",
                "curl",
                "-sS",
                "--max-time",
                "5",
                url,
                check=False,
            )
            assert "Welcome to nginx!" in by_service.stdout, (url, by_service.returncode, by_service.stderr)
        job = live.get(f"/api/jobs/{instance['job_id']}")
        assert job["state"] == "succeeded"
        started = [
            e
            for e in job["events"]
            if e["task"] == "Start each instance placed on this worker"
            and e["item"] == "clientsrvr.test.nginx.test.instance.0"
        ]
        assert started and started[-1]["host"] == instance["worker_id"]
        clusters = poll(lambda: live.get("/api/clusters/active"), 120, "the cluster facts")
        assert clusters[0]["cluster_name"] == "cluster1" and clusters[0]["active_nodes"] == 2
    finally:
        live.delete_and_wait(app)
    for host in live.bed.hosts:
        for name in ("clientsrvr.test.nginx.test.instance.0", "clientsrvr.test.curl.test.instance.0"):
            assert traces(live.bed, host, name) == [], (host, name)


SCRIPT = 'tail -f /dev/null; echo "$0"'


def test_hostile_descriptor_strings_are_deployed_verbatim_and_never_evaluated_on_the_controller(
    live, testbed, tmp_path
):
    marker = tmp_path / "evaluated"
    template = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    shell = f"$(touch {marker}) `touch {marker}`; touch {marker}"
    hostile = f"{template} {shell} {{% raw %}}"
    descriptor = _descriptor(
        "hostile",
        [
            _sleeper(
                # `;` keeps sh as PID 1 (it would exec a lone command), so its argv stays readable.
                cmd=["sh", "-c", SCRIPT, hostile],
                environment=[f"HOSTILE={hostile}"],
                state=hostile,
            )
        ],
    )
    descriptor["applications"][0]["application_desc"] = hostile
    app = live.create(descriptor)
    assert app["application_desc"] == hostile
    live.post(f"/api/service/{app['microservices'][0]}/instance")
    try:
        services = poll(lambda: live.settled(app), 240, "the hostile instance settled")
        instance = services[0]["instance_list"][0]
        assert instance["status"] == "RUNNING", live.jobs_of(app)
        name = "hostile.test.sleeper.test.instance.0"
        argv = live.bed.exec_in(instance["worker_id"], name, "cat", "/proc/1/cmdline").stdout.split("\0")
        assert argv[:4] == ["sh", "-c", SCRIPT, hostile]
        environ = live.bed.exec_in(instance["worker_id"], name, "cat", "/proc/1/environ").stdout.split("\0")
        assert f"HOSTILE={hostile}" in environ
        assert services[0]["state"] == hostile
    finally:
        live.delete_and_wait(app)
    assert not marker.exists()


def test_killing_the_api_during_a_deploy_job_loses_and_duplicates_nothing(live, testbed):
    app = live.create(_descriptor("crash", [_sleeper()]))
    service = app["microservices"][0]
    jobs = [live.post(f"/api/service/{service}/instance")["job_id"] for _ in range(2)]
    try:

        def mid_run():
            job = live.get(f"/api/jobs/{jobs[-1]}")
            return job["state"] == "running" and any(e["task"] == "Schedule" for e in job["events"])

        poll(mid_run, 120, "the deploy job in the middle of its run", 0.1)
        live.kill()
        live.start()
        services = poll(lambda: live.settled(app), 300, "the instances settled after the restart")
        instances = services[0]["instance_list"]
        assert [(i["instance_number"], i["status"]) for i in instances] == [(0, "RUNNING"), (1, "RUNNING")], (
            live.jobs_of(app)
        )
        job = poll(
            lambda: (j := live.get(f"/api/jobs/{jobs[-1]}"))["state"] in ("succeeded", "failed") and j,
            120,
            "the re-queued job finished",
        )
        assert job["state"] == "succeeded" and job["attempts"] == 1, job["status_detail"]
        assert "interrupted" in job["status_detail"]
        found = {}
        for host in live.bed.hosts:
            for record in live.bed.module(host, "grove.edge.node_info", {})["node"]["instances"]:
                if record["service"] == "crash.test.sleeper.test":
                    found.setdefault(record["instance_number"], []).append(host)
        assert sorted(found) == [0, 1] and all(len(hosts) == 1 for hosts in found.values()), found
        assert len(live.get("/api/services")) >= 1
        assert [s["microserviceID"] for s in live.services(app)] == [service]
    finally:
        live.delete_and_wait(app)


def test_twenty_concurrent_requests_for_room_for_ten_run_ten_and_batch_into_few_runs(live, testbed):
    nodes = {host: live.bed.module(host, "grove.edge.node_info", {})["node"] for host in live.bed.hosts}
    assert all(not node["instances"] for node in nodes.values()), "the test bed must start empty"
    vcpus = {node["vcpus"] for node in nodes.values()}
    assert len(vcpus) == 1, vcpus
    share = vcpus.pop() / 5  # five per worker, ten on the two
    memory = 16
    assert all(node["memory_free_mb"] > 10 * memory for node in nodes.values())
    app = live.create(_descriptor("burst", [_sleeper(vcpus=share, memory=memory)]))
    service = app["microservices"][0]
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(
                pool.map(
                    lambda _: live.client.post(f"/api/service/{service}/instance", headers=live.headers),
                    range(20),
                )
            )
        assert [a.status_code for a in answers] == [200] * 20
        assert sorted(a.json()["instance_number"] for a in answers) == list(range(20))
        services = poll(lambda: live.settled(app), 420, "all twenty settled")
        instances = services[0]["instance_list"]
        statuses = [i["status"] for i in instances]
        assert statuses.count("RUNNING") == 10, live.jobs_of(app)
        for instance in instances:
            if instance["status"] != "RUNNING":
                assert instance["status"] in CAPACITY, instance
                assert "vcpus" in instance["status_detail"], instance
        runs = {live.get(f"/api/jobs/{a.json()['job_id']}")["run"]["run_id"] for a in answers}
        assert len(runs) <= 4, f"{len(runs)} playbook runs for 20 requests"
        for host in live.bed.hosts:
            node = live.bed.module(host, "grove.edge.node_info", {})["node"]
            used = sum(i["resources"]["vcpus"] for i in node["instances"] if i["status"] == "RUNNING")
            assert used <= node["vcpus"] + 1e-9, (host, used)
    finally:
        live.delete_and_wait(app, timeout=300)


def _oak(venv: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **NO_PROXY_ENV, "HOME": str(home), "COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(venv / "bin" / "oak"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"oak {' '.join(args)}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_oak_cli_creates_deploys_shows_inspects_and_deletes_the_seeds_application(live, testbed, tmp_path):
    venv = tmp_path / "oak-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", OAK_CLI], check=True, capture_output=True)
    subprocess.run([*pip, *OAK_CLI_DEPS], check=True, capture_output=True)
    home = tmp_path / "home"
    (home / "oak_cli" / "SLAs").mkdir(parents=True)
    (home / "oak_cli" / ".oak_cli_config").write_text(
        '[OAK_CLI]\nconfig_version = 1\nlocal_machine_purpose = ["initial"]\nsystem_manager_ip = 127.0.0.1\n'
    )
    (home / "oak_cli" / "SLAs" / "clientsrvr.json").write_text(json.dumps(SEED))
    created = _oak(venv, home, "application", "create", "--sla-file-name", "clientsrvr", "-d")
    assert "Success" in created.stdout + created.stderr
    app = next(a for a in live.get("/api/applications") if a["application_name"] == "clientsrvr")
    try:
        services = poll(lambda: live.settled(app), 300, "the seed's services settled")
        assert [s["status"] for s in services] == ["RUNNING", "RUNNING"], live.jobs_of(app)
        shown = _oak(venv, home, "application", "show").stdout
        assert "clientsrvr" in shown and app["applicationID"] in shown
        listed = _oak(venv, home, "service", "show", "-v", "detailed").stdout
        assert "nginx" in listed and "curl" in listed and "RUNNING" in listed
        nginx = services[1]["microserviceID"]
        inspected = _oak(venv, home, "service", "inspect", nginx).stdout
        assert "nginx" in inspected and "RUNNING" in inspected
        _oak(venv, home, "application", "delete", app["applicationID"])
        poll(
            lambda: (
                live.client.get(f"/api/application/{app['applicationID']}", headers=live.headers).status_code
                == 404
            ),
            240,
            "oak's delete carried out",
        )
    finally:
        if (
            live.client.get(f"/api/application/{app['applicationID']}", headers=live.headers).status_code
            == 200
        ):
            live.delete_and_wait(app)
    for host in live.bed.hosts:
        node = live.bed.module(host, "grove.edge.node_info", {})["node"]
        assert not [i for i in node["instances"] if i["service"].startswith("clientsrvr.")], host
