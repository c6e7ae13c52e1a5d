"""Snapshots of what the machine holds, to prove a run leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from grove.testbed import layout

# Every process a test session starts inherits this variable from the session, also when it is
# re-parented after its parent exited (SSH control masters, daemons), so the final check can find
# what the session left running without mistaking the machine's other processes for it.
SESSION_TAG = "GROVE_TEST_SESSION"


def tag_session() -> None:
    os.environ[SESSION_TAG] = f"{os.getpid()}.{time.time_ns()}"


def _lines(argv: list[str]) -> frozenset[str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return frozenset(line.strip() for line in out.splitlines() if line.strip())


def _namespaces(pid: str) -> tuple[int, int] | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino, os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def _process_table() -> dict[str, tuple[int, str]]:
    """pid -> (parent pid, state) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields after the last ')' do not.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[entry] = (int(fields[1]), fields[0])
    return table


def _descendants(table: dict[str, tuple[int, str]], root: int) -> set[str]:
    children: dict[int, list[str]] = {}
    for pid, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(int(child))
    return found


def _started_by_session(pid: str) -> bool:
    tag = os.environ.get(SESSION_TAG)
    if not tag:
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{SESSION_TAG}={tag}".encode() in environ.split(b"\0")


def _live_processes() -> frozenset[str]:
    """Processes a test run could leave: any in another network or mount namespace than ours (the
    test bed's hosts and their containers), any whose command line names the test bed's state
    directory (host init, sshd, the registry) and any this test session started; not the machine's
    other processes. Not this process and its children either: they are still in the session's
    hands (a session fixture may stop one after this check), unlike what they started and let go."""
    ours = _namespaces("self")
    marker = str(layout.state_dir()) + "/"
    table = _process_table()
    observer = _descendants(table, os.getpid()) | {str(os.getpid())}
    found = set()
    for pid, (_ppid, state) in table.items():
        # Zombies own nothing but a pid; this machine's PID 1 never reaps orphans, so they pile up.
        if state == "Z" or pid in observer:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not cmdline:  # kernel threads
            continue
        namespaces = _namespaces(pid)
        if (namespaces is not None and namespaces != ours) or marker in cmdline or _started_by_session(pid):
            found.add(f"{pid} {cmdline.strip()}")
    return frozenset(found)


def _mounts() -> frozenset[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return frozenset(" ".join(line.split()[3:5]) for line in lines)


@dataclass(frozen=True)
class Snapshot:
    netns: frozenset[str]
    links: frozenset[str]
    routes: frozenset[str]
    mounts: frozenset[str]
    processes: frozenset[str]
    nft_tables: frozenset[str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            netns=_lines(["ip", "netns", "list"]),
            links=frozenset(line.split()[0] for line in _lines(["ip", "-br", "link"])),
            routes=_lines(["ip", "route", "show", "table", "all"]),
            mounts=_mounts(),
            processes=_live_processes(),
            nft_tables=_lines(["nft", "list", "tables"]),
        )

    def added_since(self, before: Snapshot) -> dict[str, set[str]]:
        added = {}
        for field in ("netns", "links", "routes", "mounts", "processes", "nft_tables"):
            extra = set(getattr(self, field)) - set(getattr(before, field))
            if extra:
                added[field] = extra
        return added


def wait_clean(before: Snapshot, timeout: float = 20) -> dict[str, set[str]]:
    """What the machine holds that it did not hold `before`, once the kernel has finished tearing
    down (polled until nothing is added or the deadline passes)."""
    deadline = time.monotonic() + timeout
    while True:
        added = Snapshot.take().added_since(before)
        if not added or time.monotonic() > deadline:
            return added
        time.sleep(0.2)
