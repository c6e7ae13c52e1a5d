"""Real parts for the benchmarks: a `grove api` process and the local test bed, each stopped by pid.

Everything here is started by the benchmark that uses it and stopped by it, whatever happens
(context managers): the API by its pid (and every process of its runs, found by the marker in
their environment), the test bed with `grove testbed down`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks import procs

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TESTBED_LOCK = "/run/lock/grove-testbed.lock"
RUN_MARKER = "GROVE_RUN_DIR"  # grove_api.jobs.executor.RUN_MARKER
IN_PROGRESS = {"REQUESTED", "CLUSTER_SCHEDULED", "NODE_SCHEDULED", "CREATING", "CREATED"}
NO_PROXY = {
    "http_proxy": "",
    "https_proxy": "",
    "HTTP_PROXY": "",
    "HTTPS_PROXY": "",
    "no_proxy": "127.0.0.1,localhost",
    "NO_PROXY": "127.0.0.1,localhost",
}


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s (last: {value!r})")
        time.sleep(interval)


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        **NO_PROXY,
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Api:
    """`grove api` on 127.0.0.1 (a free port), as a real process; `stop` ends it and everything
    it started, by pid."""

    def __init__(
        self,
        data_dir: Path,
        *,
        inventory: Path | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        uvicorn_args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.inventory = inventory
        self.workers = workers
        self.env = env or {}
        # Given: the same app served by `python -m uvicorn` with these options instead of `grove api`.
        self.uvicorn_args = uvicorn_args
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log = data_dir / "api.log"
        self.client: httpx.Client | None = None
        self._token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Api:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.port = free_port()
        env = {**ansible_env(), **self.env}
        if self.uvicorn_args is None:
            argv = [str(BIN / "grove"), "api", "--host", "127.0.0.1", "--port", str(self.port)]
            argv += ["--data-dir", str(self.data_dir), "--workers", str(self.workers)]
            if self.inventory is not None:
                argv += ["--inventory", str(self.inventory)]
        else:
            argv = [str(BIN / "python"), "-m", "uvicorn", "grove_api.main:app_from_env", "--factory"]
            argv += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
            argv += ["--log-level", "warning", *self.uvicorn_args]
            env["GROVE_DATA_DIR"] = str(self.data_dir)
            if self.inventory is not None:
                env["GROVE_INVENTORY"] = str(self.inventory)
        env.pop("GROVE_ADMIN_PASSWORD", None)
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, stdin=subprocess.DEVNULL
            )
        self.client = httpx.Client(base_url=self.url, trust_env=False, timeout=60)
        poll(self._ready, 60, f"grove api answering (log: {self.log})", 0.1)
        if self.workers > 1:
            # Each uvicorn worker imports the app on its own: wait until all of them are up.
            poll(lambda: len(self.pids()) > self.workers, 60, "every uvicorn worker started", 0.1)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.client is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"grove api exited: {self.log.read_text()[-3000:]}")
        try:
            return self.client.get("/api/docs").status_code == 200
        except httpx.TransportError:
            return False

    def pids(self) -> list[int]:
        """The API's own processes: `grove api` and, with several workers, uvicorn's worker
        processes (multiprocessing children); not the processes of its playbook runs."""
        if self.proc is None:
            return []
        children = [p for p in procs.every() if p.ppid == self.proc.pid and "multiprocessing" in p.cmdline]
        return [self.proc.pid, *(p.pid for p in children)]

    def run_pids(self) -> list[int]:
        """Every process of the API's playbook runs, also those no longer below it (SSH masters)."""
        return procs.with_environ(RUN_MARKER, str(self.data_dir) + "/")

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.proc is None:
            return
        mine = [*self.pids(), *(p.pid for p in procs.descendants(self.proc.pid))]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        leftovers = {*mine, *self.run_pids(), *procs.with_cmdline(f"ssh: {self.data_dir}/")}
        procs.stop([pid for pid in leftovers if procs.alive(pid)])

    def __enter__(self) -> Api:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- HTTP ---------------------------------------------------------------------------------------
    def token(self) -> str:
        if not self._token:
            self._token = self.login()
        return self._token

    def login(self) -> str:
        assert self.client is not None
        answer = self.client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"})
        answer.raise_for_status()
        return answer.json()["token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        assert self.client is not None
        answer = self.client.request(method, path, headers=self.headers, json=body)
        if answer.status_code != 200:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:2000]}")
        return answer.json()


@contextlib.contextmanager
def testbed_lock() -> Iterator[None]:
    """The machine's test bed lock, unless this process already holds it through a descriptor it
    inherited (`flock /run/lock/grove-testbed.lock make bench` passes it down)."""
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == TESTBED_LOCK:
                fcntl.flock(int(fd), fcntl.LOCK_EX)  # the same open file: ours already
                yield
                return
    with open(TESTBED_LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for the test bed lock {TESTBED_LOCK} ...", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def grove(*args: str) -> str:
    proc = subprocess.run(
        [str(BIN / "grove"), *args], capture_output=True, text=True, env=ansible_env(), check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"grove {' '.join(args)} failed: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def playbook(inventory: Path, path: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(path), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@contextlib.contextmanager
def testbed(clusters: int = 1, workers: int = 2) -> Iterator[Path]:
    """A fresh test bed with containerd on every worker (playbooks/workers.yml), removed at the end;
    yields the inventory."""
    with testbed_lock():
        grove("testbed", "down")
        try:
            inventory = Path(
                grove("testbed", "up", "--clusters", str(clusters), "--workers", str(workers))
                .strip()
                .splitlines()[-1]
            )
            playbook(inventory, REPO / "playbooks" / "workers.yml")
            yield inventory
        finally:
            grove("testbed", "down")


def hosts(inventory: Path) -> dict[str, dict]:
    """Worker name -> its inventory variables (ansible_host, grove_instance_subnet, ...)."""
    data = yaml.safe_load(inventory.read_text())["all"]
    found = {}
    for group in data["children"].values():
        for name, hostvars in group["hosts"].items():
            found[name] = {**data.get("vars", {}), **hostvars}
    return found
