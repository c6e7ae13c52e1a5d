"""Processes as /proc shows them: trees, memory, PID namespaces, and stopping what a benchmark started."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    name: str  # the kernel's comm
    cmdline: str

    @property
    def rss_mb(self) -> float:
        return memory_mb(self.pid)["rss"]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def info(pid: int) -> Proc | None:
    stat = _read(PROC / str(pid) / "stat").decode(errors="replace")
    if not stat:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
    cmdline = _read(PROC / str(pid) / "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
    return Proc(pid, ppid, name, cmdline)


def every() -> list[Proc]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = info(int(entry.name))
            if proc is not None:
                found.append(proc)
    return found


def descendants(pid: int, procs: list[Proc] | None = None) -> list[Proc]:
    """Every process below `pid` (not `pid` itself)."""
    procs = every() if procs is None else procs
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def with_environ(name: str, value_prefix: str) -> list[int]:
    """Pids whose environment variable `name` starts with `value_prefix`."""
    wanted = f"{name}={value_prefix}".encode()
    return [
        int(path.name)
        for path in PROC.iterdir()
        if path.name.isdigit()
        and int(path.name) != os.getpid()
        and any(item.startswith(wanted) for item in _read(path / "environ").split(b"\0"))
    ]


def with_cmdline(fragment: str) -> list[int]:
    """Pids whose command line contains `fragment`. SSH masters rewrite their command line (and
    with it the memory /proc shows as their environment) to "ssh: CONTROL_PATH [mux]": they are
    found by their control path, not by an inherited variable."""
    return [proc.pid for proc in every() if fragment in proc.cmdline and proc.pid != os.getpid()]


def memory_mb(pid: int) -> dict[str, float]:
    """Resident (RSS) and proportional (PSS: shared pages split between their users) memory in MB.
    Summing RSS over forked processes counts their shared pages many times; summing PSS does not."""
    values = {"rss": 0.0, "pss": 0.0}
    for line in _read(PROC / str(pid) / "smaps_rollup").decode(errors="replace").splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key.lower()] = int(rest.split()[0]) / 1024
    return values


def pid_namespace(pid: int) -> str:
    try:
        return os.readlink(PROC / str(pid) / "ns" / "pid")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    stat = _read(PROC / str(pid) / "stat").decode(errors="replace")
    # A zombie is gone for every purpose here; its parent reaps it.
    return bool(stat) and stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def stop(pids: list[int], grace: float = 15) -> list[int]:
    """SIGTERM the given pids, SIGKILL whatever is left after `grace` seconds; the pids that needed it."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = [pid for pid in pids if alive(pid)]
    for pid in killed:
        _signal(pid, signal.SIGKILL)
    return killed


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
