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
