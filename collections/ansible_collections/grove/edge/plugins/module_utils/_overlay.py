# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network between the workers' instance subnets, as a desired kernel state and the steps
that get a worker from its live state to it.

VXLAN mode follows flannel's vxlan backend, without its agent and without multicast: every worker
has one vxlan device whose address is the network address of its instance subnet (the VTEP
address) and whose MAC is derived from that address, so every worker can compute every peer's
entries from the peer's subnet and underlay address alone:

    route  10.18.2.0/24 via 10.18.2.0 dev grove-vx onlink     (peer subnet via peer VTEP address)
    neigh  10.18.2.0 lladdr 02:47:0a:12:02:00 dev grove-vx    (peer VTEP address -> peer VTEP MAC)
    fdb    02:47:0a:12:02:00 dev grove-vx dst 10.99.1.12      (peer VTEP MAC -> peer underlay address)

Routes mode, for workers on one L2 segment, routes each peer subnet via the peer's underlay
address. Both modes add an `unreachable` route for the whole pool (a packet for an instance
subnet no worker has fails here instead of following a default route off the machine), and a
route for the service network into a port-less bridge, so processes on the worker can open
connections to service addresses (nftables DNATs them; whatever is not DNATed goes nowhere).

Routes carry their own protocol number, so the ones Grove made are found again and nothing else
is touched. Stdlib only: the functions take the JSON that `ip -j` and `bridge -j` print.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

from ansible_collections.grove.edge.plugins.module_utils._nft import check_table

VXLAN = "vxlan"
ROUTES = "routes"
MODES = (VXLAN, ROUTES)
DEFAULT_DEVICE = "grove-vx"
DEFAULT_SERVICE_DEVICE = "grove-svc"
DEFAULT_VNI = 1818
DEFAULT_PORT = 4789
DEFAULT_POOL = "10.18.0.0/16"
DEFAULT_SERVICE_NETWORK = "10.30.0.0/16"
DEFAULT_TABLE = "grove_overlay"
# Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
VXLAN_OVERHEAD = 50
ROUTE_PROTOCOL = 118
GUARD_METRIC = 4280
# Locally administered unicast, then the four bytes of the VTEP address.
MAC_PREFIX = "02:47"
IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")


class OverlayError(ValueError):
    """Options that cannot describe an overlay; the message names the option."""


@dataclass(frozen=True)
class Peer:
    name: str
    subnet: ipaddress.IPv4Network
    underlay: ipaddress.IPv4Address


@dataclass(frozen=True)
class Config:
    mode: str
    subnet: ipaddress.IPv4Network | None
    local: ipaddress.IPv4Address | None
    peers: tuple
    pool: ipaddress.IPv4Network | None
    device: str = DEFAULT_DEVICE
    vni: int = DEFAULT_VNI
    port: int = DEFAULT_PORT
    mtu: int = 0  # 0: the underlay device's MTU minus the VXLAN overhead
    service_network: ipaddress.IPv4Network | None = None
    service_device: str = DEFAULT_SERVICE_DEVICE
    guard: bool = True
    table: str = DEFAULT_TABLE


@dataclass(frozen=True)
class Link:
    name: str
    kind: str
    vni: int = 0
    port: int = 0
    local: str = ""
    learning: bool = False
    mtu: int = 0
    mac: str = ""
    up: bool = True
    addresses: frozenset = frozenset()

    def identity(self) -> tuple:
        """What cannot change on a live link: a difference here means delete and add again."""
        return (self.kind, self.vni, self.port, self.local, self.learning)

    def describe(self) -> str:
        words = [self.kind]
        if self.kind == VXLAN:
            words += ["id %d" % self.vni, "local %s" % self.local, "dstport %d" % self.port]
            words.append("learning" if self.learning else "nolearning")
        if self.mtu:
            words.append("mtu %d" % self.mtu)
        if self.mac:
            words.append("address %s" % self.mac)
        words.append("up" if self.up else "down")
        words += ["inet %s" % address for address in sorted(self.addresses)]
        return " ".join(words)


@dataclass(frozen=True)
class Route:
    dst: str
    type: str = "unicast"
    gateway: str = ""
    dev: str = ""
    onlink: bool = False
    metric: int = 0

    def key(self) -> str:
        words = [] if self.type == "unicast" else [self.type]
        words.append(self.dst)
        if self.gateway:
            words += ["via", self.gateway]
        if self.dev:
            words += ["dev", self.dev]
        if self.onlink:
            words.append("onlink")
        if self.metric:
            words += ["metric", str(self.metric)]
        return " ".join(words)

    def argv(self, verb: str) -> list[str]:
        argv = ["ip", "route", verb, *self.key().split(), "proto", str(ROUTE_PROTOCOL)]
        if verb == "del" and "onlink" in argv:
            argv.remove("onlink")
        return argv


@dataclass
class State:
    links: dict = field(default_factory=dict)  # name -> Link
    routes: dict = field(default_factory=dict)  # key -> Route
    neighbours: set = field(default_factory=set)  # (dev, ip, mac)
    fdb: set = field(default_factory=set)  # (dev, mac, dst)
    forwarding: bool | None = None  # None: leave as it is

    def describe(self) -> dict:
        return {
            "links": {name: link.describe() for name, link in sorted(self.links.items())},
            "routes": sorted(self.routes),
            "neighbours": sorted("%s lladdr %s dev %s" % (ip, mac, dev) for dev, ip, mac in self.neighbours),
            "fdb": sorted("%s dev %s dst %s" % (mac, dev, dst) for dev, mac, dst in self.fdb),
            "forwarding": self.forwarding,
        }


@dataclass(frozen=True)
class Step:
    description: str
    argv: list | None = None  # a command, or None for the forwarding sysctl


# --- options ---------------------------------------------------------------------------------


def _network(value: object, option: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise OverlayError(
            "%s: %r is not a network address with prefix length (%s)" % (option, value, exc)
        ) from exc
    if network.version != 4:
        raise OverlayError("%s: %s is not an IPv4 network" % (option, network))
    return network


def _address(value: object, option: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise OverlayError("%s: %r is not an IPv4 address" % (option, value)) from exc
    if address.version != 4:
        raise OverlayError("%s: %s is not an IPv4 address" % (option, address))
    return address


def _ifname(value: object, option: str) -> str:
    if not isinstance(value, str) or not IFNAME.fullmatch(value):
        raise OverlayError(
            "%s: %r is not a usable interface name (1-15 letters, digits, '_', '.', '-')" % (option, value)
        )
    return value


def _names(params: dict) -> tuple:
    """The device and table names, the only options that removal needs."""
    table = params.get("table", DEFAULT_TABLE)
    try:
        check_table("ip", table)
    except ValueError as exc:
        raise OverlayError("table: %s" % exc) from exc
    device = _ifname(params.get("device", DEFAULT_DEVICE), "device")
    service_device = _ifname(params.get("service_device", DEFAULT_SERVICE_DEVICE), "service_device")
    if device == service_device:
        raise OverlayError("service_device: must differ from device (%s)" % device)
    return device, service_device, table


def removal_config(params: dict) -> Config:
    """A Config that names what state=absent removes."""
    device, service_device, table = _names(params)
    return Config(
        mode=VXLAN,
        subnet=None,
        local=None,
        peers=(),
        pool=None,
        device=device,
        service_device=service_device,
        table=table,
    )


def check_config(params: dict) -> Config:
    """A Config from the module's options; OverlayError names the first bad option."""
    mode = params.get("mode", VXLAN)
    if mode not in MODES:
        raise OverlayError("mode: %r is not one of %s" % (mode, ", ".join(MODES)))
    pool = _network(params.get("pool", DEFAULT_POOL), "pool")
    subnet = _network(params.get("subnet"), "subnet")
    if not subnet.subnet_of(pool):
        raise OverlayError("subnet: %s is outside the pool %s" % (subnet, pool))
    local = _address(params["local"], "local") if params.get("local") else None
    if local is None:
        raise OverlayError("local: the worker's underlay address is required")
    peers = []
    seen = {"(this worker)": subnet}
    for index, raw in enumerate(params.get("peers") or []):
        where = "peers[%d]" % index
        if not isinstance(raw, dict):
            raise OverlayError("%s: must be an object with name, subnet and underlay" % where)
        name = raw.get("name") or where
        peer = Peer(
            name=str(name),
            subnet=_network(raw.get("subnet"), where + ".subnet"),
            underlay=_address(raw.get("underlay"), where + ".underlay"),
        )
        if not peer.subnet.subnet_of(pool):
            raise OverlayError(
                "%s.subnet: %s of %s is outside the pool %s" % (where, peer.subnet, peer.name, pool)
            )
        for other, other_subnet in seen.items():
            if peer.subnet.overlaps(other_subnet):
                raise OverlayError(
                    "%s.subnet: %s of %s overlaps %s of %s"
                    % (where, peer.subnet, peer.name, other_subnet, other)
                )
        if peer.underlay == local:
            raise OverlayError(
                "%s.underlay: %s of %s is this worker's own address" % (where, peer.underlay, peer.name)
            )
        seen[peer.name] = peer.subnet
        peers.append(peer)
    vni = params.get("vni", DEFAULT_VNI)
    if not isinstance(vni, int) or not 1 <= vni <= 16777215:
        raise OverlayError("vni: %r must be from 1 to 16777215" % (vni,))
    port = params.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise OverlayError("port: %r must be from 1 to 65535" % (port,))
    mtu = params.get("mtu", 0) or 0
    if not isinstance(mtu, int) or (mtu and not 576 <= mtu <= 65485):
        raise OverlayError("mtu: %r must be 0 (automatic) or from 576 to 65485" % (mtu,))
    service_network = params.get("service_network", DEFAULT_SERVICE_NETWORK)
    service_network = _network(service_network, "service_network") if service_network else None
    if service_network is not None and service_network.overlaps(pool):
        raise OverlayError("service_network: %s overlaps the pool %s" % (service_network, pool))
    device, service_device, table = _names(params)
    return Config(
        mode=mode,
        subnet=subnet,
        local=local,
        peers=tuple(sorted(peers, key=lambda p: p.subnet)),
        pool=pool,
        device=device,
        vni=vni,
        port=port,
        mtu=mtu,
        service_network=service_network,
        service_device=service_device,
        guard=bool(params.get("guard", True)),
        table=table,
    )


# --- desired state ---------------------------------------------------------------------------


def vtep_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address


def vtep_mac(subnet: ipaddress.IPv4Network) -> str:
    return ":".join([MAC_PREFIX] + ["%02x" % byte for byte in subnet.network_address.packed])


def effective_mtu(config: Config, underlay_mtu: int) -> int:
    return config.mtu or max(576, underlay_mtu - VXLAN_OVERHEAD)


def desired_state(config: Config, underlay_dev: str, underlay_mtu: int) -> State:
    state = State(forwarding=True)
    if config.mode == VXLAN:
        own = vtep_address(config.subnet)
        state.links[config.device] = Link(
            name=config.device,
            kind=VXLAN,
            vni=config.vni,
            port=config.port,
            local=str(config.local),
            learning=False,
            mtu=effective_mtu(config, underlay_mtu),
            mac=vtep_mac(config.subnet),
            addresses=frozenset(["%s/32" % own]),
        )
        for peer in config.peers:
            vtep = str(vtep_address(peer.subnet))
            mac = vtep_mac(peer.subnet)
            state.neighbours.add((config.device, vtep, mac))
            state.fdb.add((config.device, mac, str(peer.underlay)))
            route = Route(dst=str(peer.subnet), gateway=vtep, dev=config.device, onlink=True)
            state.routes[route.key()] = route
    else:
        for peer in config.peers:
            route = Route(dst=str(peer.subnet), gateway=str(peer.underlay), dev=underlay_dev)
            state.routes[route.key()] = route
    if config.guard:
        guard = Route(dst=str(config.pool), type="unreachable", metric=GUARD_METRIC)
        state.routes[guard.key()] = guard
    if config.service_network is not None:
        state.links[config.service_device] = Link(name=config.service_device, kind="bridge")
        route = Route(dst=str(config.service_network), dev=config.service_device)
        state.routes[route.key()] = route
    return state


def render_table(config: Config) -> str:
    """grove_overlay: instance addresses stay visible across workers; TCP fits the VXLAN MTU.

    The CNI bridge plugin (ipMasq) masquerades whatever leaves an instance subnet. A nat chain
    that runs before it and maps instance-to-instance traffic onto its own source address makes
    the kernel skip the later masquerade (the first nat binding of a connection wins), so
    instances see each other's real addresses across workers.
    """
    pool = str(config.pool)
    lines = [
        "table ip %s {" % config.table,
        '\tcomment "Grove overlay: managed by grove.edge.overlay"',
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat - 10; policy accept;",
        "\t\tip saddr %s ip daddr %s snat to ip saddr" % (pool, pool),
        "\t}",
    ]
    if config.mode == VXLAN:
        lines += [
            "",
            "\tchain forward {",
            "\t\ttype filter hook forward priority mangle; policy accept;",
            '\t\toifname "%s" tcp flags syn / syn,rst tcp option maxseg size set rt mtu' % config.device,
            "\t}",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- live state ------------------------------------------------------------------------------


def _loads(text: str, what: str) -> list:
    try:
        value = json.loads(text or "[]")
    except ValueError as exc:
        raise OverlayError("cannot read %s: %s" % (what, exc)) from exc
    return value if isinstance(value, list) else []


def parse_links(addr_json: str, names: tuple) -> dict:
    """Links named in `names` from `ip -j -d addr show`."""
    links = {}
    for entry in _loads(addr_json, "ip -j -d addr show"):
        name = entry.get("ifname")
        if name not in names:
            continue
        info = entry.get("linkinfo") or {}
        data = info.get("info_data") or {}
        kind = info.get("info_kind", "")
        addresses = frozenset(
            "%s/%s" % (a.get("local"), a.get("prefixlen"))
            for a in entry.get("addr_info") or []
            if a.get("family") == "inet"
        )
        links[name] = Link(
            name=name,
            kind=kind,
            vni=int(data.get("id", 0)) if kind == VXLAN else 0,
            port=int(data.get("port", 0)) if kind == VXLAN else 0,
            local=str(data.get("local", "")) if kind == VXLAN else "",
            learning=bool(data.get("learning", False)) if kind == VXLAN else False,
            mtu=int(entry.get("mtu", 0)) if kind == VXLAN else 0,
            mac=str(entry.get("address", "")) if kind == VXLAN else "",
            up="UP" in (entry.get("flags") or []),
            addresses=addresses,
        )
    return links


def underlay_of(addr_json: str, local: ipaddress.IPv4Address) -> tuple:
    """(device name, mtu) of the link that holds the address `local`, or (None, 0)."""
    for entry in _loads(addr_json, "ip -j -d addr show"):
        for address in entry.get("addr_info") or []:
            if address.get("family") == "inet" and address.get("local") == str(local):
                return entry.get("ifname"), int(entry.get("mtu", 0))
    return None, 0


def parse_routes(routes_json: str) -> dict:
    """Routes from `ip -j route show table main proto <ROUTE_PROTOCOL>`."""
    routes = {}
    for entry in _loads(routes_json, "ip -j route show"):
        route_type = entry.get("type", "unicast")
        route = Route(
            dst=entry.get("dst", ""),
            type=route_type,
            gateway=entry.get("gateway", ""),
            dev="" if route_type != "unicast" else entry.get("dev", ""),
            onlink="onlink" in (entry.get("flags") or []),
            metric=int(entry.get("metric", 0) or 0),
        )
        routes[route.key()] = route
    return routes


def parse_neighbours(neigh_json: str, dev: str) -> set:
    """Permanent entries (the ones Grove makes) from `ip -j neigh show dev <dev>`."""
    found = set()
    for entry in _loads(neigh_json, "ip -j neigh show"):
        if "PERMANENT" in (entry.get("state") or []) and entry.get("lladdr"):
            found.add((dev, entry.get("dst", ""), entry["lladdr"].lower()))
    return found


def parse_fdb(fdb_json: str, dev: str) -> set:
    """Entries with a remote destination from `bridge -j fdb show dev <dev>`."""
    found = set()
    for entry in _loads(fdb_json, "bridge -j fdb show"):
        if entry.get("dst") and entry.get("mac"):
            found.add((dev, entry["mac"].lower(), entry["dst"]))
    return found


# --- the way there ---------------------------------------------------------------------------


def _add_link(link: Link) -> list:
    if link.kind == VXLAN:
        return [
            "ip",
            "link",
            "add",
            link.name,
            "address",
            link.mac,
            "mtu",
            str(link.mtu),
            "type",
            VXLAN,
            "id",
            str(link.vni),
            "local",
            link.local,
            "dstport",
            str(link.port),
            "learning" if link.learning else "nolearning",
        ]
    return ["ip", "link", "add", link.name, "type", link.kind]


def plan(desired: State, live: State) -> list:
    """The steps from `live` to `desired`, removals first; empty when they already match."""
    steps = []
    removed_links = set()
    for name, link in sorted(live.links.items()):
        wanted = desired.links.get(name)
        if wanted is None or wanted.identity() != link.identity():
            why = "remove" if wanted is None else "recreate (settings changed)"
            steps.append(Step("%s link %s" % (why, name), ["ip", "link", "del", name]))
            removed_links.add(name)
    for key, route in sorted(live.routes.items()):
        if key not in desired.routes and route.dev not in removed_links:
            steps.append(Step("remove route %s" % key, route.argv("del")))
    for dev, ip, _mac in sorted(live.neighbours - desired.neighbours):
        if dev not in removed_links:
            steps.append(
                Step("remove neighbour %s on %s" % (ip, dev), ["ip", "neigh", "del", ip, "dev", dev])
            )
    for dev, mac, dst in sorted(live.fdb - desired.fdb):
        if dev not in removed_links:
            steps.append(
                Step(
                    "remove fdb entry %s dst %s on %s" % (mac, dst, dev),
                    ["bridge", "fdb", "del", mac, "dev", dev, "dst", dst, "self"],
                )
            )
    for name, link in sorted(desired.links.items()):
        existing = None if name in removed_links else live.links.get(name)
        if existing is None:
            steps.append(Step("add link %s (%s)" % (name, link.kind), _add_link(link)))
            existing = Link(
                name=name,
                kind=link.kind,
                vni=link.vni,
                port=link.port,
                local=link.local,
                learning=link.learning,
                mtu=link.mtu,
                mac=link.mac,
                up=False,
            )
        settings = []
        if link.mtu and existing.mtu != link.mtu:
            settings += ["mtu", str(link.mtu)]
        if link.mac and existing.mac.lower() != link.mac:
            settings += ["address", link.mac]
        if settings:
            steps.append(
                Step(
                    "set %s of link %s" % (" and ".join(settings[::2]), name),
                    ["ip", "link", "set", "dev", name, *settings],
                )
            )
        if link.up and not existing.up:
            steps.append(Step("bring link %s up" % name, ["ip", "link", "set", "dev", name, "up"]))
        for address in sorted(existing.addresses - link.addresses):
            steps.append(
                Step(
                    "remove address %s from %s" % (address, name), ["ip", "addr", "del", address, "dev", name]
                )
            )
        for address in sorted(link.addresses - existing.addresses):
            steps.append(
                Step("add address %s to %s" % (address, name), ["ip", "addr", "add", address, "dev", name])
            )
    for dev, ip, mac in sorted(desired.neighbours):
        if (dev, ip, mac) in live.neighbours and dev not in removed_links:
            continue
        steps.append(
            Step(
                "add neighbour %s lladdr %s on %s" % (ip, mac, dev),
                ["ip", "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent"],
            )
        )
    for dev, mac, dst in sorted(desired.fdb):
        if (dev, mac, dst) in live.fdb and dev not in removed_links:
            continue
        steps.append(
            Step(
                "add fdb entry %s dst %s on %s" % (mac, dst, dev),
                ["bridge", "fdb", "replace", mac, "dev", dev, "dst", dst, "self", "permanent"],
            )
        )
    for key, route in sorted(desired.routes.items()):
        if key in live.routes and route.dev not in removed_links:
            continue
        steps.append(Step("add route %s" % key, route.argv("replace")))
    if desired.forwarding is not None and live.forwarding != desired.forwarding:
        steps.append(Step("%s IPv4 forwarding" % ("enable" if desired.forwarding else "disable")))
    return steps
