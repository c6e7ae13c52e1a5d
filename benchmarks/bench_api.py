"""`grove api` under load: a live server (uvicorn, embedded SQLite store) holding 1,000 services in
100 applications of 10, each service with one instance requested, driven by wrk from this machine
(16 connections, one wrk thread, so wrk and the server share the same 2 cores). Each round runs
every endpoint for a few seconds in turn, so all endpoints see the same noise; the figure is the
median over the rounds. The baseline is GET /api/docs of the same server (a static page: no token,
no store), so the ratio is the cost of the real work (token check, store reads, the view). The
last rows compare the 1-worker server with the same app served by uvicorn without uvloop and
httptools (`--loop asyncio --http h11`), loaded in the same rounds: what those two bring. The
login figure is POST /api/auth/login over HTTP next to the argon2id verify alone, in process:
Oakestra's CLIs log in again whenever their token is older than 10 s, so a login must stay cheap
(the argon2 cost in `grove api`'s settings is chosen for about 50 ms here) while the hash stays
memory-hard; failed logins are throttled after 5, so guessing stays slow.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Figure, Series, timed
from benchmarks.live import Api

SECTION = "API (grove api, wrk)"
APPLICATIONS = 100
SERVICES_PER_APPLICATION = 10
CONNECTIONS = 16
GATE_RATE = 1000.0
GATE_P99_MS = 50.0
BASELINE = "GET /api/docs"

LUA = r"""
-- wrk: GET the paths listed in GROVE_BENCH_PATHS in turn, with the token; one JSON line at the end.
local token = os.getenv("GROVE_BENCH_TOKEN")
local paths = {}
for line in io.lines(os.getenv("GROVE_BENCH_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["Authorization"] = "Bearer " .. token})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'GROVE-WRK {"requests": %d, "duration_us": %d, "p99_us": %d, "errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _descriptor(app: int, services: int) -> dict:
    return {
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [
            {
                "applicationID": "",
                "application_name": f"bench{app}",
                "application_namespace": "bench",
                "application_desc": "benchmark load",
                "microservices": [
                    {
                        "microserviceID": "",
                        "microservice_name": f"svc{number}",
                        "microservice_namespace": "bench",
                        "virtualization": "container",
                        "cmd": [],
                        "memory": 100,
                        "vcpus": 0.1,
                        "code": "docker.io/library/nginx:latest",
                        "port": "80",
                    }
                    for number in range(services)
                ],
            }
        ],
    }


def _seed(api: Api, applications: int, services: int) -> list[str]:
    """Register the applications and request one instance of each service; the service ids."""
    ids: list[str] = []
    for app in range(applications):
        answer = api.call("POST", "/api/application", _descriptor(app, services))
        mine = next(a for a in answer if a["application_name"] == f"bench{app}")
        ids += mine["microservices"]
    for service in ids:
        api.call("POST", f"/api/service/{service}/instance")
    return ids


def _wrk(api: Api, script: Path, paths: Path, seconds: float, token: str) -> tuple[float, float]:
    """One wrk run: (requests per second, p99 in ms)."""
    proc = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds:g}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            api.url + "/",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
        env={"GROVE_BENCH_TOKEN": token, "GROVE_BENCH_PATHS": str(paths), "PATH": "/usr/bin:/bin"},
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("GROVE-WRK ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads(line.split(" ", 1)[1])
    if result["errors"] or result["non2xx"]:
        raise RuntimeError(f"wrk saw errors against {api.url}: {result} (log: {api.log})")
    return result["requests"] / (result["duration_us"] / 1e6), result["p99_us"] / 1000


def _measure_load(
    servers: dict[str, Api], workdir: Path, endpoints: dict[str, list[str]], rounds: int, seconds: float
) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """(server, endpoint) -> (req/s samples, p99 samples); every round loads each server's
    endpoints in turn, so all of them see the same noise."""
    script = workdir / "bench.lua"
    script.write_text(LUA)
    tokens = {label: api.login() for label, api in servers.items()}
    files = {}
    for name, paths in endpoints.items():
        files[name] = workdir / f"paths-{len(files)}.txt"
        files[name].write_text("\n".join(paths) + "\n")
    results: dict[tuple[str, str], tuple[list[float], list[float]]] = {
        (label, name): ([], []) for label in servers for name in endpoints
    }
    # Warm up every worker process and code path (imports, caches) before measuring.
    for label, api in servers.items():
        for name in endpoints:
            _wrk(api, script, files[name], 1, tokens[label])
    for _ in range(rounds):
        for label, api in servers.items():
            for name in endpoints:
                rate, p99 = _wrk(api, script, files[name], seconds, tokens[label])
                results[(label, name)][0].append(rate)
                results[(label, name)][1].append(p99)
    return results


def _load_figures(results: dict, label: str, endpoints: dict[str, list[str]]) -> list[Figure]:
    base_rate = Series(f"{BASELINE}, {label}", "req/s", results[(label, BASELINE)][0])
    base_p99 = Series(f"{BASELINE}, {label}, p99", "ms", results[(label, BASELINE)][1])
    figures = []
    for name in endpoints:
        if name == BASELINE:
            continue
        rate = Series(f"{name}, {label}", "req/s", results[(label, name)][0])
        p99 = Series(f"{name}, {label}, p99", "ms", results[(label, name)][1])
        passed = rate.median >= GATE_RATE and p99.median < GATE_P99_MS
        gate = f">= {GATE_RATE:,.0f} req/s with p99 < {GATE_P99_MS:g} ms"
        figures.append(Figure(SECTION, rate, base_rate, better="higher", gate=gate, gate_passed=passed))
        figures.append(Figure(SECTION, p99, base_p99, gate=gate, gate_passed=passed))
    return figures


def _http_layer_figures(results: dict, fast: str, slow: str, endpoints: dict[str, list[str]]) -> list[Figure]:
    """The same server with and without uvloop + httptools (the before/after of that change)."""
    figures = []
    for name in endpoints:
        figures.append(
            Figure(
                SECTION,
                Series(f"{name}, {fast}, httptools + uvloop", "req/s", results[(fast, name)][0]),
                Series(f"{slow}", "req/s", results[(slow, name)][0]),
                better="higher",
            )
        )
    return figures


def _login_figure(api: Api, repeat: int) -> Figure:
    from argon2 import PasswordHasher  # noqa: PLC0415 - the API's own dependency
    from grove_api.settings import Settings  # noqa: PLC0415

    settings = Settings()
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    hashed = hasher.hash("Admin")
    verify = timed(lambda: hasher.verify(hashed, "Admin"), repeat)
    logins = timed(api.login, repeat)
    cost = (
        f"t={settings.argon2_time_cost}, m={settings.argon2_memory_kib} KiB, p={settings.argon2_parallelism}"
    )
    return Figure(
        SECTION,
        Series("POST /api/auth/login over HTTP", "ms", [s * 1000 for s in logins]),
        Series(f"argon2id verify alone ({cost})", "ms", [s * 1000 for s in verify]),
        notes=[
            "A login is the argon2id verify plus two JWTs and the throttle's bookkeeping; the ratio is "
            "what the server adds to the hash."
        ],
    )


def run(quick: bool = False) -> list[Figure]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is missing: run `make setup` (it installs Debian's wrk)")
    applications = 2 if quick else APPLICATIONS
    services = 2 if quick else SERVICES_PER_APPLICATION
    rounds, seconds = (1, 1.0) if quick else (5, 5.0)
    worker_counts = (1, 2) if quick else (1, 4)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="grove-bench-api-") as tmp:
        workdir = Path(tmp)
        data_dir = workdir / "data"
        started = time.monotonic()
        with Api(data_dir, workers=1) as api:
            ids = _seed(api, applications, services)
            seeded = time.monotonic() - started
            figures.append(_login_figure(api, 3 if quick else 30))
        endpoints = {
            BASELINE: ["/api/docs"],
            "GET /api/applications": ["/api/applications"],
            "GET /api/service/{id}": [f"/api/service/{service}" for service in ids],
        }
        labels = {count: f"{count} uvicorn worker{'s' if count > 1 else ''}" for count in worker_counts}
        slow = f"{labels[1]}, h11 + asyncio"
        with contextlib.ExitStack() as stack:
            servers = {
                label: stack.enter_context(Api(data_dir, workers=count)) for count, label in labels.items()
            }
            servers[slow] = stack.enter_context(
                Api(data_dir, workers=1, uvicorn_args=["--loop", "asyncio", "--http", "h11"])
            )
            results = _measure_load(servers, workdir, endpoints, rounds, seconds)
        for label in labels.values():
            figures += _load_figures(results, label, endpoints)
        figures += _http_layer_figures(results, labels[1], slow, endpoints)
        size = len(ids)
    figures[-1].notes.append(
        f"{size:,} services in {applications} applications, one instance requested each (registered "
        f"over HTTP in {seeded:.0f} s); GET /api/service/{{id}} cycles through all of them. "
        f"wrk -t1 -c{CONNECTIONS}, {rounds} rounds of {seconds:g} s per endpoint after a 1 s warm-up."
    )
    return figures
