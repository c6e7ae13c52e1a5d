"""Cost of a login to `grove api` (argon2id verify + two JWTs), and of the hash alone.

Oakestra's CLIs log in again whenever their token is older than 10 s, so a login must stay cheap;
the argon2 cost (Settings.argon2_*) is chosen for about 50 ms here.

    .venv/bin/python benchmarks/bench_api.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from grove_api.main import create_app
from grove_api.settings import Settings

REPEAT = 30


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms (min {min(samples) * 1000:.1f})"


def main() -> int:
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), run_jobs=False)
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    hashed = hasher.hash("Admin")
    verify = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        hasher.verify(hashed, "Admin")
        verify.append(time.perf_counter() - start)
    logins = []
    with TestClient(create_app(settings)) as client:
        for _ in range(REPEAT):
            start = time.perf_counter()
            answer = client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"})
            logins.append(time.perf_counter() - start)
            assert answer.status_code == 200
    cost = (
        f"t={settings.argon2_time_cost}, m={settings.argon2_memory_kib} KiB, p={settings.argon2_parallelism}"
    )
    print(f"| argon2id verify ({cost}) | {_median_ms(verify)} |")
    print(f"| POST /api/auth/login (in process) | {_median_ms(logins)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
