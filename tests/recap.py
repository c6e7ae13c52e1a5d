"""Reading ansible-playbook's PLAY RECAP."""

from __future__ import annotations

import re

_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    hosts = {}
    for host, ok, changed, unreachable, failed in _RECAP.findall(stdout):
        hosts[host] = {
            "ok": int(ok),
            "changed": int(changed),
            "unreachable": int(unreachable),
            "failed": int(failed),
        }
    if not hosts:
        raise AssertionError(f"no PLAY RECAP in:\n{stdout}")
    return hosts


def total_changed(stdout: str) -> int:
    return sum(h["changed"] for h in recap(stdout).values())


_TASK = re.compile(r"^TASK \[(.+?)\]", re.MULTILINE)
_CHANGED = re.compile(r"^changed: \[([^\]]+)\]", re.MULTILINE)


def changed_tasks(stdout: str) -> dict[str, set[str]]:
    """Per host, the names of the tasks that reported a change (any verbosity)."""
    changed: dict[str, set[str]] = {}
    task = ""
    for line in stdout.splitlines():
        if match := _TASK.match(line):
            task = match.group(1)
        elif match := _CHANGED.match(line):
            changed.setdefault(match.group(1), set()).add(task)
    return changed
