# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service addresses: every service's round-robin address (RR_ip) in 10.30.0.0/16, and the one
nftables table per worker that balances connections to it over the service's running instances.

Stdlib only and no Ansible imports: the API allocates addresses and builds the service lists
with these functions too.

The table (`table ip grove_services`) on every worker:

- nat prerouting (from the instance bridge) and nat output (processes on the worker): a
  connection to RR_ip:port is DNATed to one backend, chosen round-robin per connection
  (`numgen inc`); conntrack keeps every later packet of the connection on that backend.
- nat postrouting: DNATed connections that leave through the instance bridge are masqueraded,
  so the reply of a backend on the client's own bridge comes back through the worker and is
  un-DNATed (hairpin), and so are connections from processes on the worker whose source is not
  an instance address (the backend's worker could not route the reply otherwise).
- filter forward and output: whatever is still addressed to the service network (an unknown
  address, a port the service does not expose, a service without running instances) is
  rejected at once, TCP with a reset; so no 10.30/16 packet is ever routed anywhere, and DNAT
  targets are only ever addresses inside the instance network.

The rules are written the way `nft list table` prints them, so the live table compares line by
line with the rendered one, and every service's rule carries its name as a comment, so the live
table is also the record of which service has which address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

SERVICE_NETWORK = "10.30.0.0/16"
INSTANCE_NETWORK = "10.18.0.0/16"
DEFAULT_TABLE = "grove_services"
DEFAULT_BRIDGE = "grove0"
PROTOCOLS = ("tcp", "udp")
NAME = r"[A-Za-z0-9]{1,30}"
FQN_PATTERN = re.compile(r"%s(?:\.%s){3}" % (NAME, NAME))
IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
RUNNING = "RUNNING"


class ServiceAddressError(ValueError):
    """Input that cannot describe service addresses; the message names the field and the reason."""


class RrIpConflict(ServiceAddressError):
    """A fixed rr_ip that another service already has (the API answers 409)."""

    def __init__(self, service: str, other: str, address: str) -> None:
        super().__init__(
            "rr_ip %s of service %s is already the round-robin address of service %s"
            % (address, service, other)
        )
        self.service = service
        self.other = other
        self.address = address


@dataclass(frozen=True)
class Service:
    service: str  # fully qualified name app.appns.svc.svcns
    rr_ip: ipaddress.IPv4Address
    ports: tuple = ()  # ((port, protocol), ...); empty: every port and protocol
    backends: tuple = ()  # IPv4Address, sorted, no duplicates

    def to_dict(self) -> dict:
        return {
            "service": self.service,
            "rr_ip": str(self.rr_ip),
            "ports": ["%d/%s" % port for port in self.ports],
            "backends": [str(backend) for backend in self.backends],
        }


def _network(value: str, what: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise ServiceAddressError("%s: %r is not an IPv4 network (%s)" % (what, value, exc)) from exc
    if network.version != 4:
        raise ServiceAddressError("%s: %s is not an IPv4 network" % (what, network))
    return network


def check_fqn(value: object, what: str = "service") -> str:
    if not isinstance(value, str) or not FQN_PATTERN.fullmatch(value):
        raise ServiceAddressError(
            "%s: %r is not a fully qualified service name app.appns.service.servicens "
            "(four names of 1 to 30 letters or digits)" % (what, value)
        )
    return value


def check_rr_ip(value: object, what: str, network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError as exc:
        raise ServiceAddressError("%s: %r is not an IPv4 address" % (what, value)) from exc
    if address not in network:
        raise ServiceAddressError("%s: %s is outside the service network %s" % (what, address, network))
    if address in (network.network_address, network.broadcast_address):
        raise ServiceAddressError(
            "%s: %s is the network or broadcast address of %s" % (what, address, network)
        )
    return address


# --- round-robin addresses --------------------------------------------------------------------


def _start(service: str, size: int) -> int:
    digest = hashlib.sha256(service.encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def hashed_address(service: str, taken, network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The first free address from a position given by the name's hash, probing upwards."""
    first = int(network.network_address) + 1
    size = network.num_addresses - 2
    start = _start(service, size)
    for step in range(size):
        candidate = ipaddress.IPv4Address(first + (start + step) % size)
        if candidate not in taken:
            return candidate
    raise ServiceAddressError(
        "service %s: the service network %s has no free address left" % (service, network)
    )


def assign_rr_ips(
    wanted: dict, taken: dict | None = None, current: dict | None = None, network: str = SERVICE_NETWORK
) -> dict:
    """service -> round-robin address for every service in `wanted`.

    wanted:  service -> its descriptor's fixed rr_ip, or "" for "allocate one".
    taken:   address -> owner, for addresses held by anything outside `wanted` (other services,
             instances); a fixed rr_ip among them raises RrIpConflict naming both.
    current: service -> the address it has now; kept when it is still free, so an address does
             not move when other services come and go.
    Fixed addresses are placed first, then kept ones, then new ones in name order: the same
    input always gives the same answer.
    """
    service_network = _network(network, "network")
    owners = {}
    for address, owner in (taken or {}).items():
        try:
            owners[ipaddress.IPv4Address(str(address))] = str(owner)
        except ValueError:
            continue  # not an IPv4 address (an instance without one): it cannot clash
    result = {}
    for service in sorted(wanted):
        check_fqn(service)
        fixed = wanted[service]
        if not fixed:
            continue
        address = check_rr_ip(fixed, "rr_ip of service %s" % service, service_network)
        if address in owners and owners[address] != service:
            raise RrIpConflict(service, owners[address], str(address))
        owners[address] = service
        result[service] = address
    pending = sorted(service for service in wanted if service not in result)
    new = []
    for service in pending:
        kept = (current or {}).get(service)
        try:
            address = ipaddress.IPv4Address(str(kept)) if kept else None
        except ValueError:
            address = None
        if address is not None and address in service_network and owners.get(address, service) == service:
            owners[address] = service
            result[service] = address
        else:
            new.append(service)
    for service in new:
        address = hashed_address(service, owners, service_network)
        owners[address] = service
        result[service] = address
    return {service: str(address) for service, address in sorted(result.items())}


# --- ports and backends -----------------------------------------------------------------------


def container_ports(port_field: str) -> list:
    """The container ports of a descriptor's `port` field ("6080:80/tcp;9000") as ["80/tcp", "9000/tcp"]."""
    found = []
    for position, raw in enumerate((port_field or "").split(";"), start=1):
        entry = raw.strip()
        if not entry:
            continue
        spec, _slash, protocol = entry.partition("/")
        protocol = (protocol.strip() or "tcp").lower()
        container = spec.split(":")[-1].strip()
        port = "%s/%s" % (container, protocol)
        parse_port(port, "port entry %d (%r)" % (position, entry))
        if port not in found:
            found.append(port)
    return found


def parse_port(value: object, what: str) -> tuple:
    text = str(value).strip().lower()
    number, _slash, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in PROTOCOLS:
        raise ServiceAddressError("%s: protocol %r is not tcp or udp" % (what, protocol))
    if not number.isdigit() or not 1 <= int(number) <= 65535:
        raise ServiceAddressError("%s: %r is not a port from 1 to 65535" % (what, value))
    return int(number), protocol


def running_backends(instances: list) -> dict:
    """service -> sorted addresses of its RUNNING instances, from node_info instance lists."""
    backends: dict = {}
    for instance in instances or []:
        if not isinstance(instance, dict) or instance.get("status") != RUNNING or not instance.get("address"):
            continue
        try:
            address = ipaddress.IPv4Address(str(instance["address"]))
        except ValueError:
            continue
        backends.setdefault(str(instance.get("service", "")), set()).add(address)
    return {service: [str(a) for a in sorted(addresses)] for service, addresses in sorted(backends.items())}


def parse_services(
    items: list, service_network: str = SERVICE_NETWORK, instance_network: str = INSTANCE_NETWORK
) -> list:
    """Validated Service objects from [{service, rr_ip, ports, backends}], sorted by address."""
    services_net = _network(service_network, "service_network")
    instances_net = _network(instance_network, "instance_network")
    if services_net.overlaps(instances_net):
        raise ServiceAddressError(
            "service_network %s overlaps instance_network %s" % (services_net, instances_net)
        )
    if not isinstance(items, list):
        raise ServiceAddressError("services: must be a list")
    services = []
    names: dict = {}
    addresses: dict = {}
    for index, item in enumerate(items):
        where = "services[%d]" % index
        if not isinstance(item, dict):
            raise ServiceAddressError("%s: must be an object" % where)
        fqn = check_fqn(item.get("service"), where + ".service")
        if fqn in names:
            raise ServiceAddressError("%s.service: %s is listed twice (also %s)" % (where, fqn, names[fqn]))
        names[fqn] = where
        rr_ip = check_rr_ip(item.get("rr_ip"), where + ".rr_ip", services_net)
        if rr_ip in addresses:
            raise RrIpConflict(fqn, addresses[rr_ip], str(rr_ip))
        addresses[rr_ip] = fqn
        ports = item.get("ports") or []
        if not isinstance(ports, list):
            raise ServiceAddressError('%s.ports: must be a list like ["80/tcp"]' % where)
        parsed_ports = sorted(
            {parse_port(port, "%s.ports[%d]" % (where, i)) for i, port in enumerate(ports)},
            key=lambda p: (p[1], p[0]),
        )
        backends = set()
        raw_backends = item.get("backends") or []
        if not isinstance(raw_backends, list):
            raise ServiceAddressError("%s.backends: must be a list of instance addresses" % where)
        for i, raw in enumerate(raw_backends):
            try:
                backend = ipaddress.IPv4Address(str(raw))
            except ValueError as exc:
                raise ServiceAddressError(
                    "%s.backends[%d]: %r is not an IPv4 address" % (where, i, raw)
                ) from exc
            if backend not in instances_net or backend in (
                instances_net.network_address,
                instances_net.broadcast_address,
            ):
                raise ServiceAddressError(
                    "%s.backends[%d]: %s is not an instance address inside %s"
                    % (where, i, backend, instances_net)
                )
            backends.add(backend)
        services.append(Service(fqn, rr_ip, tuple(parsed_ports), tuple(sorted(backends))))
    return sorted(services, key=lambda s: s.rr_ip)


# --- the table --------------------------------------------------------------------------------


def _target(backends: tuple) -> str:
    if len(backends) == 1:
        return "dnat to %s" % backends[0]
    mapping = ", ".join("%d : %s" % (index, backend) for index, backend in enumerate(backends))
    return "dnat to numgen inc mod %d map { %s }" % (len(backends), mapping)


def _service_rules(service: Service) -> list:
    # Without backends the rule only returns: the connection stays addressed to the service
    # network and the filter chains reject it. The rule still records the service's address.
    action = _target(service.backends) if service.backends else "return"
    comment = ' comment "%s"' % service.service
    if not service.ports:
        return ["ip daddr %s %s%s" % (service.rr_ip, action, comment)]
    rules = []
    for protocol in PROTOCOLS:
        numbers = [str(port) for port, proto in service.ports if proto == protocol]
        if not numbers:
            continue
        match = numbers[0] if len(numbers) == 1 else "{ %s }" % ", ".join(numbers)
        rules.append("ip daddr %s %s dport %s %s%s" % (service.rr_ip, protocol, match, action, comment))
    return rules


def render_table(
    services: list,
    table: str = DEFAULT_TABLE,
    bridge: str = DEFAULT_BRIDGE,
    service_network: str = SERVICE_NETWORK,
    instance_network: str = INSTANCE_NETWORK,
) -> str:
    """The complete `table ip <table>` for a worker, from parse_services() output."""
    if not IFNAME.fullmatch(bridge or ""):
        raise ServiceAddressError("bridge: %r is not a usable interface name" % (bridge,))
    services_net = _network(service_network, "service_network")
    instances_net = _network(instance_network, "instance_network")
    rules = [rule for service in services for rule in _service_rules(service)]
    lines = [
        "table ip %s {" % table,
        '\tcomment "Grove service addresses: managed by grove.edge.service_address"',
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat - 10; policy accept;",
        '\t\tiifname "%s" ip daddr %s jump services' % (bridge, services_net),
        "\t}",
        "",
        "\tchain output {",
        "\t\ttype nat hook output priority -110; policy accept;",
        "\t\tip daddr %s jump services" % services_net,
        "\t}",
        "",
        "\tchain services {",
    ]
    lines += ["\t\t" + rule for rule in rules]
    lines += [
        "\t}",
        "",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat - 20; policy accept;",
        '\t\tct status dnat oifname "%s" masquerade' % bridge,
        "\t\tct status dnat ip saddr != %s masquerade" % instances_net,
        "\t}",
        "",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter - 10; policy accept;",
        "\t\tip daddr %s reject with tcp reset" % services_net,
        "\t\tip daddr %s reject" % services_net,
        "\t}",
        "",
        "\tchain output_filter {",
        "\t\ttype filter hook output priority filter - 10; policy accept;",
        "\t\tip daddr %s reject with tcp reset" % services_net,
        "\t\tip daddr %s reject" % services_net,
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


_RULE = re.compile(
    r"^ip daddr (?P<rr_ip>[0-9.]+)(?: (?P<proto>tcp|udp) dport (?P<ports>\{ [0-9, ]+ \}|[0-9]+))? "
    r'(?P<action>.*) comment "(?P<service>[^"]+)"$'
)
_BACKEND = re.compile(r"\b\d+ : ([0-9.]+)")


def services_in_table(listing: str | None) -> list:
    """What a live table says about its services: [{service, rr_ip, ports, backends}]."""
    found: dict = {}
    in_services = False
    for raw in (listing or "").splitlines():
        line = raw.strip()
        if line.startswith("chain "):
            in_services = line == "chain services {"
            continue
        match = _RULE.match(line) if in_services else None
        if not match:
            continue
        entry = found.setdefault(
            match.group("service"),
            {"service": match.group("service"), "rr_ip": match.group("rr_ip"), "ports": [], "backends": []},
        )
        if match.group("proto"):
            numbers = re.findall(r"\d+", match.group("ports"))
            entry["ports"] += ["%s/%s" % (number, match.group("proto")) for number in numbers]
        action = match.group("action")
        if action.startswith("dnat to numgen"):
            backends = _BACKEND.findall(action)
        elif action.startswith("dnat to "):
            backends = [action[len("dnat to ") :].strip()]
        else:
            backends = []
        for backend in backends:
            if backend not in entry["backends"]:
                entry["backends"].append(backend)
    return [found[name] for name in sorted(found)]


def desired_services(
    services: list,
    *,
    recorded: list | None = None,
    instances: list | None = None,
    removed: list | None = None,
    taken: dict | None = None,
    network: str = SERVICE_NETWORK,
) -> list:
    """The full service list for every worker's table, for playbooks that have no store.

    services: [{service, rr_ip (fixed or ""), port (descriptor syntax) or ports}] being deployed.
    recorded: services read back from the workers' live tables (services_in_table); every one
              not in `services` or `removed` stays, with its address and ports.
    instances: node_info instances of ALL workers; the backends are their RUNNING addresses.
    removed:  services to drop (undeploy).
    taken:    address -> owner for addresses held outside these services.
    """
    removed_set = set(removed or [])
    known: dict = {}
    for entry in recorded or []:
        name = entry.get("service") if isinstance(entry, dict) else None
        if not name or name in removed_set or name in known:
            continue
        known[name] = entry
    wanted: dict = {}
    ports: dict = {}
    for index, entry in enumerate(services or []):
        if not isinstance(entry, dict):
            raise ServiceAddressError("services[%d]: must be an object" % index)
        name = check_fqn(entry.get("service"), "services[%d].service" % index)
        if name in removed_set:
            continue
        wanted[name] = entry.get("rr_ip") or ""
        if "ports" in entry and entry["ports"] is not None:
            ports[name] = list(entry["ports"])
        else:
            ports[name] = container_ports(entry.get("port") or "")
    # Services already in the tables keep their addresses; a new fixed rr_ip that one of them
    # holds is a conflict that names both.
    others = {name: entry for name, entry in known.items() if name not in wanted}
    held = dict(taken or {})
    for name, entry in others.items():
        if entry.get("rr_ip"):
            held[entry["rr_ip"]] = name
    current = {name: entry.get("rr_ip", "") for name, entry in known.items() if name in wanted}
    addresses = assign_rr_ips(wanted, taken=held, current=current, network=network)
    for name, entry in others.items():
        addresses[name] = entry.get("rr_ip", "")
        ports[name] = list(entry.get("ports") or [])
    backends = running_backends(instances or [])
    return [
        {"service": name, "rr_ip": addresses[name], "ports": ports[name], "backends": backends.get(name, [])}
        for name in sorted(addresses)
    ]
