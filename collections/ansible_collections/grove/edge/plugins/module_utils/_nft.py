# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole nftables tables, owned by one module each: compare the live table with a rendered one,
replace it in one transaction, remove it.

Stdlib only. The rendered text is written in the form `nft list table` prints, so the live table
and the wanted one can be compared line by line; only what nft prints differently for the same
rule (symbolic chain priorities) is normalised.
"""

from __future__ import annotations

import re

TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
# Standard priorities of the ip/inet families (nft(8), "CHAIN PRIORITIES").
_PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
_PRIORITY = re.compile(r"\bpriority (raw|mangle|dstnat|filter|security|srcnat)(?: ([+-]) (\d+))?;")
_MISSING = ("No such file or directory", "does not exist")


class NftError(RuntimeError):
    """An nft call failed; carries its output for fail_json."""

    def __init__(self, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr


def check_table(family: str, name: str) -> None:
    if family not in FAMILIES:
        raise ValueError("nftables family %r is not one of %s" % (family, ", ".join(FAMILIES)))
    if not TABLE_NAME.fullmatch(name or ""):
        raise ValueError(
            "nftables table name %r must be a letter followed by up to 31 letters, digits or _" % name
        )


def _numeric_priority(match: re.Match) -> str:
    value = _PRIORITY_NAMES[match.group(1)]
    if match.group(2):
        offset = int(match.group(3))
        value = value + offset if match.group(2) == "+" else value - offset
    return "priority %d;" % value


def normalize(listing: str) -> list[str]:
    """The table's lines without indentation, blank lines, handles, and with numeric priorities."""
    lines = []
    for raw in listing.splitlines():
        line = re.sub(r"\s+# handle \d+$", "", raw.strip())
        if not line:
            continue
        lines.append(_PRIORITY.sub(_numeric_priority, line))
    return lines


def same_table(live: str | None, rendered: str) -> bool:
    return live is not None and normalize(live) == normalize(rendered)


def replace_script(family: str, name: str, definition: str) -> str:
    """One transaction that replaces the table whole: create it if missing, delete, define anew.

    nft applies a file atomically, so packets see either the old table or the new one.
    """
    check_table(family, name)
    return "table %s %s\ndelete table %s %s\n%s" % (family, name, family, name, definition)


def delete_script(family: str, name: str) -> str:
    check_table(family, name)
    return "table %s %s\ndelete table %s %s\n" % (family, name, family, name)


class Nft:
    """The nft CLI, through a `run(argv, data=None)` callable returning (rc, stdout, stderr)."""

    def __init__(self, run, nft: str = "nft") -> None:
        self._run = run
        self._nft = nft

    def list_table(self, family: str, name: str) -> str | None:
        """The table as nft prints it, or None when there is no such table."""
        check_table(family, name)
        rc, stdout, stderr = self._run([self._nft, "list", "table", family, name])
        if rc == 0:
            return stdout
        if any(marker in stderr for marker in _MISSING):
            return None
        raise NftError("nft list table %s %s failed: %s" % (family, name, stderr.strip()), stdout, stderr)

    def apply(self, script: str, what: str) -> None:
        rc, stdout, stderr = self._run([self._nft, "-f", "-"], data=script)
        if rc != 0:
            raise NftError("%s failed: %s" % (what, stderr.strip() or stdout.strip()), stdout, stderr)

    def replace_table(self, family: str, name: str, definition: str) -> None:
        self.apply(replace_script(family, name, definition), "replace table %s %s" % (family, name))

    def delete_table(self, family: str, name: str) -> None:
        self.apply(delete_script(family, name), "delete table %s %s" % (family, name))
