# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Oakestra's port syntax, the one place that reads and writes it.

`host:container[/tcp|udp];...`, a single number mapping a port to itself. The descriptor, the
instance labels, the CNI portmap arguments and the scheduler's host-port bookkeeping all go
through here. Stdlib only: the Grove API imports it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROTOCOLS = ("tcp", "udp")
_NUMBER = re.compile(r"[0-9]{1,5}")


class PortError(ValueError):
    """A port specification that cannot be used; `problems` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host_port}:{self.container_port}/{self.protocol}"

    @property
    def host_key(self) -> str:
        """The host side as the scheduler and node_info write it: `6080/tcp`."""
        return f"{self.host_port}/{self.protocol}"


def _number(text: str) -> int | None:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    number = int(text)
    return number if 1 <= number <= 65535 else None


def _entry(entry: str) -> tuple[PortMapping | None, str]:
    spec, has_protocol, protocol = entry.partition("/")
    protocol = protocol.strip().lower() if has_protocol else "tcp"
    if protocol not in PROTOCOLS:
        return None, f"protocol {protocol!r} is not tcp or udp"
    parts = spec.split(":")
    if len(parts) > 2:
        return None, "expected hostport:containerport[/tcp|udp] or a single port"
    host, container = _number(parts[0]), _number(parts[-1])
    if host is None or container is None:
        return None, "ports must be whole numbers from 1 to 65535"
    return PortMapping(host, container, protocol), ""


def port_problems(text: str) -> tuple[list[PortMapping], list[str]]:
    """The mappings that parse, and a description of every entry that does not."""
    mappings: list[PortMapping] = []
    problems: list[str] = []
    if not text.strip():
        return mappings, problems
    seen: dict[str, str] = {}
    for position, raw in enumerate(text.split(";"), start=1):
        entry = raw.strip()
        if not entry:
            problems.append(f"entry {position} is empty")
            continue
        mapping, problem = _entry(entry)
        if mapping is None:
            problems.append(f"entry {position} ({entry!r}): {problem}")
            continue
        if mapping.host_key in seen:
            problems.append(
                f"entry {position} ({entry!r}): host port {mapping.host_key} "
                f"is already mapped by {seen[mapping.host_key]!r}"
            )
            continue
        seen[mapping.host_key] = entry
        mappings.append(mapping)
    return mappings, problems


def parse_ports(text: str) -> list[PortMapping]:
    """Every mapping of `text`; raises PortError listing every bad entry."""
    if not isinstance(text, str):
        raise PortError([f"must be a string like '8080:80/tcp;53/udp', not {type(text).__name__}"])
    mappings, problems = port_problems(text)
    if problems:
        raise PortError(problems)
    return mappings


def format_ports(mappings: list[PortMapping]) -> str:
    """The normalised text of `mappings`, which parse_ports reads back unchanged."""
    return ";".join(str(mapping) for mapping in mappings)


def parse_host_port(value: object) -> tuple[int, str]:
    """`6080/tcp`, `53/udp` or a bare number (tcp) as (port, protocol); ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value, "tcp"
    if isinstance(value, str):
        number, _slash, protocol = value.partition("/")
        port = _number(number)
        protocol = protocol.strip().lower() or "tcp"
        if port is not None and protocol in PROTOCOLS:
            return port, protocol
    raise ValueError(f"host ports look like 8080/tcp or 53/udp, not {value!r}")
