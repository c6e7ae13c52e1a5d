"""The local edge test bed for the tests: brought up once per shape, reached like Ansible reaches it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def grove(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "grove"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"grove {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
    return proc


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


@dataclass
class Testbed:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    inventory: Path
    hosts: dict[str, dict]  # name -> hostvars (ansible_host, grove_instance_subnet, ...)
    clusters: dict[str, list[str]]

    def playbook(
        self, playbook: str | Path, *args: str, extravars: dict | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook), *args]
        if extravars is not None:
            argv += ["-e", json.dumps(extravars)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def module(self, host: str, module: str, args: dict, *, check_mode: bool = False) -> dict:
        """Run one module on one host through ansible (ad hoc, JSON callback) and return its result."""
        argv = [str(BIN / "ansible"), "-i", str(self.inventory), host, "-m", module]
        if args:
            argv += ["-a", json.dumps(args)]
        if check_mode:
            argv.append("--check")
        proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, check=False)
        # Ad hoc output is "<host> | <STATUS> => <JSON result>".
        head = re.search(rf"^{re.escape(host)} \| ([A-Z]+)!? => ", proc.stdout, re.MULTILINE)
        if head is None:
            raise AssertionError(f"{module} on {host}: no result: {proc.stdout}\n{proc.stderr}")
        result = json.JSONDecoder().raw_decode(proc.stdout[head.end() :])[0]
        # The ad hoc display drops "failed"; its status word ("FAILED!") carries it.
        result["failed"] = head.group(1) == "FAILED"
        return result

    def exec_in(
        self, host: str, instance: str, *argv: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`ctr task exec` into an instance on its worker, as the seed's walkthrough does."""
        exec_id = f"t{time.monotonic_ns()}"
        return self.host_shell(
            host, ["ctr", "-n", "grove", "task", "exec", "--exec-id", exec_id, instance, *argv], check=check
        )

    def remove_instance(self, host: str, service: str, number: int = 0) -> None:
        result = self.module(
            host,
            "grove.edge.instance",
            {"service": service, "instance_number": number, "state": "absent", "stop_timeout": 2},
        )
        assert not result["failed"], result

    def host_shell(self, host: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on a worker host over SSH, as Ansible would reach it."""
        inventory_vars = yaml.safe_load(self.inventory.read_text())["all"]["vars"]
        proc = subprocess.run(
            [
                "ssh",
                "-i",
                inventory_vars["ansible_ssh_private_key_file"],
                # The inventory's own SSH options: the host's key is checked against the test bed's
                # known_hosts, exactly as for Ansible.
                *shlex.split(inventory_vars["ansible_ssh_common_args"]),
                "-o",
                "LogLevel=ERROR",
                "-o",
                "BatchMode=yes",
                f"root@{self.hosts[host]['ansible_host']}",
                "--",
                *[shlex.quote(a) for a in argv],
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{host}: {argv} failed: {proc.stdout}\n{proc.stderr}")
        return proc


def _load(inventory: Path) -> Testbed:
    data = yaml.safe_load(inventory.read_text())["all"]["children"]
    hosts, clusters = {}, {}
    for cluster, group in data.items():
        clusters[cluster] = list(group["hosts"])
        for name, hostvars in group["hosts"].items():
            hosts[name] = dict(hostvars, grove_cluster=cluster)
    return Testbed(inventory=inventory, hosts=hosts, clusters=clusters)


class _Bed:
    shape: tuple[int, int] | None = None
    bed: Testbed | None = None
    containerd_ready: bool = False


def bring_up(clusters: int, workers: int) -> Testbed:
    if _Bed.shape != (clusters, workers):
        grove("testbed", "down")
        out = grove("testbed", "up", "--clusters", str(clusters), "--workers", str(workers)).stdout
        _Bed.bed = _load(Path(out.strip().splitlines()[-1]))
        _Bed.shape = (clusters, workers)
        _Bed.containerd_ready = False
    assert _Bed.bed is not None
    return _Bed.bed


def current_testbed() -> Testbed | None:
    """The test bed this session brought up and prepared, if any."""
    return _Bed.bed if _Bed.containerd_ready else None


def forget_testbed() -> None:
    _Bed.shape = None
    _Bed.bed = None
    _Bed.containerd_ready = False


def needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("containerd") is None:
        pytest.skip("needs root and the packages of `make setup`")


def ensure_containerd(bed: Testbed) -> None:
    if not _Bed.containerd_ready:
        bed.playbook(REPO / "playbooks" / "workers.yml")
        _Bed.containerd_ready = True
