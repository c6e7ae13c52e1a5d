# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an instance uses right now, read from the kernel: CPU time and memory from its cgroup
(v1 or v2, found through /proc/<pid>/cgroup, so whatever cgroup layout the runtime chose), and
the tail of its log. Counters are cumulative; a reader that samples twice works out the rates."""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
LOG_TAIL_BYTES = 4096
LOG_TAIL_LINES = 20
# Above this, cgroup v1 reports "no limit" (a page-rounded LONG_MAX).
NO_LIMIT = 1 << 62


def read_text(path: str) -> str:
    """A small kernel or config file's content, stripped; "" when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _integer(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def cgroup_paths(pid: int, proc: str = "/proc") -> dict[str, str]:
    """controller (or "" for cgroup v2) -> the process's cgroup path."""
    paths = {}
    for line in read_text(f"{proc}/{pid}/cgroup").splitlines():
        _hierarchy, _colon, rest = line.partition(":")
        controllers, _colon, path = rest.partition(":")
        if controllers == "":
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _first(candidates: list[str]) -> str:
    for candidate in candidates:
        text = read_text(candidate)
        if text:
            return text
    return ""


def usage(pid: int | None, root: str = CGROUP_ROOT, proc: str = "/proc") -> dict:
    """CPU time (ns, cumulative), memory in use and the memory limit (bytes; None: none or unknown)."""
    found: dict = {"cpu_ns": None, "memory_bytes": None, "memory_limit_bytes": None}
    if not pid:
        return found
    paths = cgroup_paths(pid, proc)
    unified = paths.get("")
    memory, cpu = paths.get("memory"), paths.get("cpuacct") or paths.get("cpu")
    if memory is not None:
        base = [f"{root}/memory{memory}"]
        found["memory_bytes"] = _integer(_first([p + "/memory.usage_in_bytes" for p in base]))
        limit = _integer(_first([p + "/memory.limit_in_bytes" for p in base]))
        found["memory_limit_bytes"] = limit if limit is not None and limit < NO_LIMIT else None
    if cpu is not None:
        candidates = [
            f"{root}/{name}{cpu}/cpuacct.usage" for name in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")
        ]
        found["cpu_ns"] = _integer(_first(candidates))
    if unified is not None and (found["memory_bytes"] is None or found["cpu_ns"] is None):
        base = [f"{root}{unified}", f"{root}/unified{unified}"]
        if found["memory_bytes"] is None:
            found["memory_bytes"] = _integer(_first([p + "/memory.current" for p in base]))
            found["memory_limit_bytes"] = _integer(_first([p + "/memory.max" for p in base]))
        if found["cpu_ns"] is None:
            stat = _first([p + "/cpu.stat" for p in base])
            for line in stat.splitlines():
                key, _space, value = line.partition(" ")
                if key == "usage_usec" and value.isdigit():
                    found["cpu_ns"] = int(value) * 1000
    return found


def cpu_times(proc: str = "/proc") -> dict:
    """The whole host's busy and total CPU time (clock ticks, cumulative) from /proc/stat."""
    fields = read_text(f"{proc}/stat").splitlines()[:1]
    numbers = [int(value) for value in fields[0].split()[1:] if value.isdigit()] if fields else []
    if len(numbers) < 5:
        return {"busy": None, "total": None}
    idle = numbers[3] + numbers[4]  # idle + iowait
    return {"busy": sum(numbers) - idle, "total": sum(numbers)}


def log_tail(path: str, lines: int = LOG_TAIL_LINES, limit: int = LOG_TAIL_BYTES) -> str:
    """The last `lines` lines of a log file, at most `limit` bytes of it; "" if there is none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - limit, 0))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > limit and "\n" in text:
        text = text.split("\n", 1)[1]  # the first line was cut in the middle
    return "\n".join(text.splitlines()[-lines:])
