"""Snapshots of what the machine holds, to prove a run leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _lines(argv: list[str]) -> frozenset[str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return frozenset(line.strip() for line in out.splitlines() if line.strip())


def _namespaces(pid: str) -> tuple[int, int] | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino, os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def _live_processes() -> frozenset[str]:
    """Processes the test bed could leave: any in another network or mount namespace than ours,
    and any whose command line names Grove (the registry, host init); not the machine's others."""
    ours = _namespaces("self")
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            raw_cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cmdline = raw_cmdline.replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state = stat[stat.rindex(")") + 2 :].split()[0]
        # Zombies own nothing but a pid; this machine's PID 1 never reaps orphans, so they pile up.
        if state == "Z" or not cmdline or int(entry) == os.getpid():
            continue
        namespaces = _namespaces(entry)
        if (namespaces is not None and namespaces != ours) or "grove" in cmdline:
            found.add(f"{entry} {cmdline.strip()}")
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
