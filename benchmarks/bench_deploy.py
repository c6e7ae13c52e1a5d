"""End-to-end timings on the local test bed: up, worker preparation, deploy, re-deploy, undeploy, down.

Each step is a real command (grove, ansible-playbook over SSH into the test bed's hosts), timed
with the wall clock; the median of REPEAT rounds is printed as a Markdown table.

    sudo .venv/bin/python benchmarks/bench_deploy.py [rounds]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
SEED = str(REPO / "examples" / "clientsrvr.json")


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def one_round() -> dict[str, float]:
    steps = {}
    steps["grove testbed up (1x2, images cached)"], out = timed([str(BIN / "grove"), "testbed", "up"])
    inventory = out.strip().splitlines()[-1]
    playbook = [str(BIN / "ansible-playbook"), "-i", inventory]
    steps["playbooks/workers.yml (containerd role, fresh hosts)"], _ = timed(
        [*playbook, "playbooks/workers.yml"]
    )
    steps["deploy.yml seed app (first: pulls images)"], _ = timed(
        [*playbook, "playbooks/deploy.yml", "-e", f"descriptor={SEED}"]
    )
    steps["deploy.yml seed app again (no change)"], _ = timed(
        [*playbook, "playbooks/deploy.yml", "-e", f"descriptor={SEED}"]
    )
    steps["undeploy.yml seed app"], _ = timed(
        [*playbook, "playbooks/undeploy.yml", "-e", f"descriptor={SEED}", "-e", "grove_stop_timeout=10"]
    )
    steps["deploy.yml seed app (images present)"], _ = timed(
        [*playbook, "playbooks/deploy.yml", "-e", f"descriptor={SEED}"]
    )
    steps["grove testbed down (with 2 containers running)"], _ = timed(
        [str(BIN / "grove"), "testbed", "down"]
    )
    return steps


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    subprocess.run([str(BIN / "grove"), "testbed", "down"], env=ENV, check=True, capture_output=True)
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for step, seconds in one_round().items():
            results.setdefault(step, []).append(seconds)
    print(f"| step | median of {rounds} (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for step, values in results.items():
        print(f"| {step} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
