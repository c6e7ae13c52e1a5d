"""The instance checks read the limits the kernel enforces on cgroup v1, hybrid and v2-only hosts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

import pytest
from helpers.instance_checks import cgroup_limits

INSTANCE = "app.ns.svc.ns.instance.0"
# The files a host's /sys/fs/cgroup shows for a container run with --memory-limit 96M --cpus 0.5.
V1 = {
    f"/sys/fs/cgroup/memory/grove/{INSTANCE}/memory.limit_in_bytes": "100663296\n",
    f"/sys/fs/cgroup/cpu,cpuacct/grove/{INSTANCE}/cpu.cfs_quota_us": "50000\n",
    f"/sys/fs/cgroup/cpu,cpuacct/grove/{INSTANCE}/cpu.cfs_period_us": "100000\n",
}
V2 = {
    f"/sys/fs/cgroup/grove/{INSTANCE}/memory.max": "100663296\n",
    f"/sys/fs/cgroup/grove/{INSTANCE}/cpu.max": "50000 100000\n",
}


def host(files: dict[str, str]):
    """A worker host that answers `ctr containers info` and `cat` from the given files."""

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if list(argv[:3]) == ["ctr", "--namespace", "grove"] and argv[3:5] == ["containers", "info"]:
            info = {"Spec": {"linux": {"cgroupsPath": f"/grove/{argv[5]}"}}}
            return subprocess.CompletedProcess(list(argv), 0, json.dumps(info), "")
        if argv[0] == "cat" and argv[1] in files:
            return subprocess.CompletedProcess(list(argv), 0, files[argv[1]], "")
        return subprocess.CompletedProcess(list(argv), 1, "", f"{argv[-1]}: No such file or directory")

    return run


@pytest.mark.parametrize("files", [V1, V2], ids=["cgroup v1", "cgroup v2"])
def test_cgroup_limits_reads_either_hierarchy(files):
    assert cgroup_limits(host(files), INSTANCE) == {
        "memory": 96 * 1024 * 1024,
        "cpu_quota": 50000,
        "cpu_period": 100000,
    }


def test_cgroup_limits_reports_no_limit_as_none():
    unlimited = {
        f"/sys/fs/cgroup/grove/{INSTANCE}/memory.max": "max\n",
        f"/sys/fs/cgroup/grove/{INSTANCE}/cpu.max": "max 100000\n",
    }
    limits = cgroup_limits(host(unlimited), INSTANCE)
    assert limits == {"memory": None, "cpu_quota": None, "cpu_period": 100000}
