"""Finding the processes that belong to a test bed host, by namespace, from the root namespace."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from grove.testbed.commands import wait_until


def _ns_inode(pid: str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _ppid_and_state(pid: str) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ')' do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def mnt_inodes_of(pids: set[int]) -> set[int]:
    """The mount namespaces the given processes live in."""
    return {i for i in (_ns_inode(str(pid), "mnt") for pid in pids) if i is not None}


def live_pids() -> dict[int, int]:
    """pid -> parent pid of every process that is not a zombie."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _ppid_and_state(entry)
            if info and info[1] != "Z":
                table[int(entry)] = info[0]
    return table


def pids_in_namespaces(net_inodes: set[int], mnt_inodes: set[int] = frozenset()) -> set[int]:
    """Processes inside the given network or mount namespaces, and all their descendants."""
    table = live_pids()
    found = set()
    for pid in table:
        if _ns_inode(str(pid), "net") in net_inodes or _ns_inode(str(pid), "mnt") in mnt_inodes:
            found.add(pid)
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    found.discard(os.getpid())
    return found


def pids_with_cmdline(marker: str) -> set[int]:
    found = set()
    for pid in live_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and pid != os.getpid():
            found.add(pid)
    return found


def kill_and_wait(pids: set[int], *, timeout: float = 15) -> None:
    """SIGKILL the processes and wait until none of them is alive (zombies count as gone)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    alive = live_pids
    wait_until(lambda: not (pids & alive().keys()), timeout=timeout, what=f"processes {sorted(pids)} to exit")
