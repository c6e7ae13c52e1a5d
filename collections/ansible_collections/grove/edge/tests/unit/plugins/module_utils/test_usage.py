"""Reading an instance's CPU and memory from its cgroup, and its log's tail (module_utils/_usage.py).

The kernel's files are laid out in temporary directories exactly as cgroup v1, v2 and /proc show them.
"""

from ansible_collections.grove.edge.plugins.module_utils._usage import (
    cgroup_paths,
    cpu_times,
    log_tail,
    usage,
)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_counters(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "42" / "cgroup", "12:memory:/grove/x.instance.0\n4:cpu,cpuacct:/grove/x.instance.0\n0::/\n")
    write(root / "memory/grove/x.instance.0/memory.usage_in_bytes", "4612096\n")
    write(root / "memory/grove/x.instance.0/memory.limit_in_bytes", "104857600\n")
    write(root / "cpu,cpuacct/grove/x.instance.0/cpuacct.usage", "81230000\n")
    assert cgroup_paths(42, str(proc))["memory"] == "/grove/x.instance.0"
    assert usage(42, str(root), str(proc)) == {
        "cpu_ns": 81230000,
        "memory_bytes": 4612096,
        "memory_limit_bytes": 104857600,
    }


def test_cgroup_v1_without_a_limit(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "7" / "cgroup", "12:memory:/a\n")
    write(root / "memory/a/memory.usage_in_bytes", "100")
    write(root / "memory/a/memory.limit_in_bytes", "9223372036854771712")
    assert usage(7, str(root), str(proc))["memory_limit_bytes"] is None


def test_cgroup_v2_counters(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "9" / "cgroup", "0::/grove/y.instance.1\n")
    write(root / "grove/y.instance.1/memory.current", "2048")
    write(root / "grove/y.instance.1/memory.max", "max")
    write(root / "grove/y.instance.1/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    assert usage(9, str(root), str(proc)) == {
        "cpu_ns": 1_500_000,
        "memory_bytes": 2048,
        "memory_limit_bytes": None,
    }


def test_no_task_or_no_cgroup_means_unknown(tmp_path):
    unknown = {"cpu_ns": None, "memory_bytes": None, "memory_limit_bytes": None}
    assert usage(None) == unknown
    assert usage(123456, str(tmp_path), str(tmp_path)) == unknown


def test_host_cpu_times(tmp_path):
    write(tmp_path / "stat", "cpu  10 0 5 100 5 0 0 0 0 0\ncpu0 1 2 3 4 5\n")
    assert cpu_times(str(tmp_path)) == {"busy": 15, "total": 120}
    assert cpu_times(str(tmp_path / "nothing")) == {"busy": None, "total": None}


def test_log_tail_keeps_whole_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(1000)))
    assert log_tail(str(log), lines=3) == "line 997\nline 998\nline 999"
    tail = log_tail(str(log), lines=1000, limit=100)
    assert tail.splitlines()[0].startswith("line ") and tail.endswith("line 999")
    assert len(tail) < 100
    assert log_tail(str(tmp_path / "missing.log")) == ""
