# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instance subnets of the workers: one per worker, out of a pool, stable for the worker's life.

The hosts are the record. Each worker keeps a small JSON file (its own subnet, and the subnets of
every worker it knew at the last run), so a subnet survives inventory changes: an explicit
`grove_instance_subnet` or the worker's own record wins; a worker that cannot be read (down,
re-imaged) gets back what the others remember for it; only then is a free subnet allocated,
deterministically (hosts in name order, lowest free subnet first). Stdlib only.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from dataclasses import dataclass, field

DEFAULT_POOL = "10.18.0.0/16"
DEFAULT_PREFIX = 24
RECORD_VERSION = 1
# A /31 or /32 leaves no room for a gateway and an instance.
MAX_PREFIX = 30


class SubnetError(ValueError):
    """No consistent subnet plan; the message names the hosts and subnets involved."""


@dataclass(frozen=True)
class Member:
    """What is known about one worker before planning."""

    name: str
    explicit: str = ""  # grove_instance_subnet from the inventory
    recorded: str = ""  # the subnet in the worker's own record
    remembered: dict = field(default_factory=dict)  # host -> subnet, from the worker's record


def parse_network(text: str, what: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(str(text), strict=True)
    except ValueError as exc:
        raise SubnetError(
            "%s: %r is not an IPv4 network address with prefix length (%s)" % (what, text, exc)
        ) from exc
    if network.version != 4:
        raise SubnetError("%s: %s is not an IPv4 network" % (what, network))
    return network


def check_pool(pool: str, prefix: int) -> ipaddress.IPv4Network:
    network = parse_network(pool, "pool")
    if (
        isinstance(prefix, bool)
        or not isinstance(prefix, int)
        or not network.prefixlen <= prefix <= MAX_PREFIX
    ):
        raise SubnetError(
            "prefix length %r must be a whole number from %d (the pool's) to %d"
            % (prefix, network.prefixlen, MAX_PREFIX)
        )
    return network


def _inside(subnet: ipaddress.IPv4Network, pool: ipaddress.IPv4Network) -> bool:
    return subnet.subnet_of(pool)


def _chosen(member: Member, pool: ipaddress.IPv4Network) -> ipaddress.IPv4Network | None:
    explicit = (
        parse_network(member.explicit, "%s: grove_instance_subnet" % member.name) if member.explicit else None
    )
    recorded = (
        parse_network(member.recorded, "%s: recorded subnet" % member.name) if member.recorded else None
    )
    if explicit and recorded and explicit != recorded:
        raise SubnetError(
            "%s: grove_instance_subnet %s differs from the subnet %s recorded on the worker; its instances "
            "keep their addresses for their life, so the subnet cannot change under them: set "
            "grove_instance_subnet back to %s, or remove the worker's instances and its record first"
            % (member.name, explicit, recorded, recorded)
        )
    chosen = explicit or recorded
    if chosen is not None and not _inside(chosen, pool):
        raise SubnetError("%s: instance subnet %s is outside the pool %s" % (member.name, chosen, pool))
    return chosen


def _remembered(name: str, members: list[Member], pool: ipaddress.IPv4Network) -> list[ipaddress.IPv4Network]:
    """Subnets other workers remember for `name`, most often remembered first, then lowest."""
    votes: Counter = Counter()
    for other in members:
        value = other.remembered.get(name) if isinstance(other.remembered, dict) else None
        if not value:
            continue
        try:
            subnet = parse_network(value, "remembered")
        except SubnetError:
            continue  # a damaged record is only a hint, never a reason to fail
        if _inside(subnet, pool):
            votes[subnet] += 1
    return sorted(votes, key=lambda subnet: (-votes[subnet], subnet))


def _overlapping(subnet: ipaddress.IPv4Network, assigned: dict) -> str | None:
    for host, other in assigned.items():
        if subnet.overlaps(other):
            return host
    return None


def plan_subnets(
    members: list[Member], pool: str = DEFAULT_POOL, prefix: int = DEFAULT_PREFIX
) -> dict[str, str]:
    """host name -> instance subnet for every member; raises SubnetError naming both sides of a clash."""
    pool_network = check_pool(pool, prefix)
    names = [member.name for member in members]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SubnetError("hosts listed more than once: %s" % ", ".join(duplicates))
    assigned: dict[str, ipaddress.IPv4Network] = {}
    for member in sorted(members, key=lambda m: m.name):
        chosen = _chosen(member, pool_network)
        if chosen is None:
            continue
        clash = _overlapping(chosen, assigned)
        if clash is not None:
            raise SubnetError(
                "%s and %s both claim instance subnets that overlap (%s and %s)"
                % (clash, member.name, assigned[clash], chosen)
            )
        assigned[member.name] = chosen
    pending = sorted(m.name for m in members if m.name not in assigned)
    unplaced = []
    for name in pending:
        for subnet in _remembered(name, members, pool_network):
            if _overlapping(subnet, assigned) is None:
                assigned[name] = subnet
                break
        else:
            unplaced.append(name)
    if unplaced:
        free = (s for s in pool_network.subnets(new_prefix=prefix) if _overlapping(s, assigned) is None)
        for name in unplaced:
            subnet = next(free, None)
            if subnet is None:
                raise SubnetError(
                    "the pool %s has no free /%d subnet left for %s (%d workers hold one)"
                    % (pool_network, prefix, name, len(assigned))
                )
            assigned[name] = subnet
    return {name: str(subnet) for name, subnet in sorted(assigned.items())}


def parse_record(text: str, path: str = "record") -> dict:
    """The worker's record {version, instance_subnet, pool, allocations}; {} for an empty text."""
    if not text.strip():
        return {}
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise SubnetError("%s is not valid JSON: %s" % (path, exc)) from exc
    if not isinstance(record, dict):
        raise SubnetError("%s must hold a JSON object" % path)
    subnet = record.get("instance_subnet", "")
    if subnet:
        parse_network(subnet, "%s: instance_subnet" % path)
    allocations = record.get("allocations", {})
    if not isinstance(allocations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in allocations.items()
    ):
        raise SubnetError("%s: allocations must map host names to subnets" % path)
    return record


def render_record(subnet: str, pool: str, allocations: dict) -> str:
    parse_network(subnet, "instance_subnet")
    record = {
        "version": RECORD_VERSION,
        "instance_subnet": subnet,
        "pool": pool,
        "allocations": {str(k): str(v) for k, v in sorted(allocations.items())},
    }
    return json.dumps(record, indent=2, sort_keys=True) + "\n"
