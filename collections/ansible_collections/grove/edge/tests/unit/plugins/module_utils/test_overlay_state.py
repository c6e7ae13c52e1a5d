"""The overlay's desired state, what `ip -j` says about the live one, and the steps between them."""

import copy
import json

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _overlay as ov

PEERS = [
    {"name": "c1w2", "subnet": "10.18.2.0/24", "underlay": "10.99.1.12"},
    {"name": "c2w1", "subnet": "10.18.3.0/24", "underlay": "10.99.2.11"},
]
BASE = {"subnet": "10.18.1.0/24", "local": "10.99.1.11", "peers": PEERS}


def config(**overrides):
    return ov.check_config(dict(BASE, **overrides))


def desired(**overrides):
    return ov.desired_state(config(**overrides), "eth0", 1500)


def as_live(state):
    """What the kernel would report after applying `state`."""
    live = copy.deepcopy(state)
    return live


def test_vxlan_state_follows_flannel():
    state = desired()
    link = state.links["grove-vx"]
    assert link.describe() == (
        "vxlan id 1818 local 10.99.1.11 dstport 4789 nolearning mtu 1450 address 02:47:0a:12:01:00 up "
        "inet 10.18.1.0/32"
    )
    assert set(state.routes) == {
        "10.18.2.0/24 via 10.18.2.0 dev grove-vx onlink",
        "10.18.3.0/24 via 10.18.3.0 dev grove-vx onlink",
        "unreachable 10.18.0.0/16 metric 4280",
        "10.30.0.0/16 dev grove-svc",
    }
    assert state.neighbours == {
        ("grove-vx", "10.18.2.0", "02:47:0a:12:02:00"),
        ("grove-vx", "10.18.3.0", "02:47:0a:12:03:00"),
    }
    assert state.fdb == {
        ("grove-vx", "02:47:0a:12:02:00", "10.99.1.12"),
        ("grove-vx", "02:47:0a:12:03:00", "10.99.2.11"),
    }
    assert state.links["grove-svc"].kind == "bridge"
    assert state.forwarding is True


def test_routes_mode_routes_peer_subnets_via_their_underlay_address():
    state = desired(mode="routes")
    assert "grove-vx" not in state.links
    assert "10.18.2.0/24 via 10.99.1.12 dev eth0" in state.routes
    assert not state.neighbours and not state.fdb


def test_options_turn_parts_off_and_change_the_mtu():
    state = desired(guard=False, service_network="", mtu=1400, vni=42, port=8472, device="vx0")
    assert set(state.links) == {"vx0"}
    assert state.links["vx0"].mtu == 1400 and state.links["vx0"].vni == 42 and state.links["vx0"].port == 8472
    assert not any(key.startswith("unreachable") for key in state.routes)


def test_the_mtu_follows_the_underlay():
    assert ov.desired_state(config(), "eth0", 9000).links["grove-vx"].mtu == 8950


def test_from_nothing_every_part_is_added_in_a_working_order():
    steps = ov.plan(desired(), ov.State())
    commands = [" ".join(step.argv) for step in steps if step.argv]
    first_link = commands.index(
        "ip link add grove-vx address 02:47:0a:12:01:00 mtu 1450 type vxlan id 1818 local 10.99.1.11 "
        "dstport 4789 nolearning"
    )
    route = commands.index("ip route replace 10.18.2.0/24 via 10.18.2.0 dev grove-vx onlink proto 118")
    neigh = commands.index("ip neigh replace 10.18.2.0 lladdr 02:47:0a:12:02:00 dev grove-vx nud permanent")
    fdb = commands.index("bridge fdb replace 02:47:0a:12:02:00 dev grove-vx dst 10.99.1.12 self permanent")
    up = commands.index("ip link set dev grove-vx up")
    assert first_link < up < neigh < fdb < route
    assert "ip addr add 10.18.1.0/32 dev grove-vx" in commands
    assert "ip route replace unreachable 10.18.0.0/16 metric 4280 proto 118" in commands
    assert "ip link add grove-svc type bridge" in commands
    assert steps[-1].argv is None and steps[-1].description == "enable IPv4 forwarding"


def test_nothing_to_do_when_live_matches():
    state = desired()
    assert ov.plan(state, as_live(state)) == []


def test_a_removed_peer_loses_its_route_neighbour_and_fdb_entry_only():
    live = as_live(desired())
    steps = ov.plan(desired(peers=PEERS[:1]), live)
    assert [step.description for step in steps] == [
        "remove route 10.18.3.0/24 via 10.18.3.0 dev grove-vx onlink",
        "remove neighbour 10.18.3.0 on grove-vx",
        "remove fdb entry 02:47:0a:12:03:00 dst 10.99.2.11 on grove-vx",
    ]
    assert steps[0].argv == [
        "ip",
        "route",
        "del",
        "10.18.3.0/24",
        "via",
        "10.18.3.0",
        "dev",
        "grove-vx",
        "proto",
        "118",
    ]


def test_a_peer_with_a_new_underlay_address_gets_its_fdb_entry_moved():
    live = as_live(desired())
    moved = [dict(PEERS[0], underlay="10.99.1.99"), PEERS[1]]
    steps = ov.plan(desired(peers=moved), live)
    assert [step.description for step in steps] == [
        "remove fdb entry 02:47:0a:12:02:00 dst 10.99.1.12 on grove-vx",
        "add fdb entry 02:47:0a:12:02:00 dst 10.99.1.99 on grove-vx",
    ]


def test_a_changed_vni_recreates_the_device_and_everything_on_it():
    live = as_live(desired())
    steps = ov.plan(desired(vni=99), live)
    descriptions = [step.description for step in steps]
    assert descriptions[0] == "recreate (settings changed) link grove-vx"
    # Nothing on the deleted device is removed one by one; all of it is added back.
    assert not any(d.startswith("remove route 10.18") for d in descriptions)
    assert "add route 10.18.2.0/24 via 10.18.2.0 dev grove-vx onlink" in descriptions
    assert "add neighbour 10.18.2.0 lladdr 02:47:0a:12:02:00 on grove-vx" in descriptions


def test_a_changed_mtu_is_set_in_place():
    live = as_live(desired())
    steps = ov.plan(desired(mtu=1400), live)
    assert [step.argv for step in steps] == [["ip", "link", "set", "dev", "grove-vx", "mtu", "1400"]]


def test_switching_to_routes_mode_removes_the_device():
    live = as_live(desired())
    descriptions = [step.description for step in ov.plan(desired(mode="routes"), live)]
    assert descriptions[0] == "remove link grove-vx"
    assert "add route 10.18.2.0/24 via 10.99.1.12 dev eth0" in descriptions


def test_removal_takes_away_everything_but_the_forwarding_setting():
    steps = ov.plan(ov.State(), as_live(desired()))
    descriptions = [step.description for step in steps]
    assert "remove link grove-vx" in descriptions and "remove link grove-svc" in descriptions
    assert "remove route unreachable 10.18.0.0/16 metric 4280" in descriptions
    assert all(step.argv is not None for step in steps)


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"mode": "gre"}, "mode"),
        ({"subnet": "10.18.1.1/24"}, "subnet"),
        ({"subnet": "10.19.1.0/24"}, "outside the pool"),
        ({"local": "nope"}, "local"),
        ({"local": ""}, "local"),
        ({"peers": [dict(PEERS[0], subnet="10.18.1.0/25")]}, "overlaps 10.18.1.0/24 of \\(this worker\\)"),
        ({"peers": [PEERS[0], dict(PEERS[1], subnet="10.18.2.0/24")]}, "overlaps 10.18.2.0/24 of c1w2"),
        ({"peers": [dict(PEERS[0], underlay="10.99.1.11")]}, "own address"),
        ({"peers": [dict(PEERS[0], underlay="{{ lookup('pipe','id') }}")]}, r"peers\[0\].underlay"),
        ({"peers": ["c1w2"]}, "must be an object"),
        ({"vni": 0}, "vni"),
        ({"port": 70000}, "port"),
        ({"mtu": 100}, "mtu"),
        ({"device": "a" * 16}, "device"),
        ({"device": "vx;rm"}, "device"),
        ({"service_device": "grove-vx"}, "must differ"),
        ({"service_network": "10.18.0.0/15"}, "overlaps the pool"),
        ({"table": "x y"}, "table"),
    ],
)
def test_bad_options_name_the_option(overrides, reason):
    with pytest.raises(ov.OverlayError, match=reason):
        config(**overrides)


# `ip -j` output captured from iproute2 6.1 on Debian 12.
ADDR_JSON = json.dumps(
    [
        {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "mtu": 65536, "addr_info": []},
        {
            "ifname": "eth0",
            "flags": ["BROADCAST", "UP"],
            "mtu": 1500,
            "linkinfo": {"info_kind": "veth"},
            "addr_info": [{"family": "inet", "local": "10.99.1.11", "prefixlen": 16}],
        },
        {
            "ifname": "grove-vx",
            "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
            "mtu": 1450,
            "address": "02:47:0a:12:01:00",
            "linkinfo": {
                "info_kind": "vxlan",
                "info_data": {"id": 1818, "local": "10.99.1.11", "port": 4789, "learning": False},
            },
            "addr_info": [
                {"family": "inet", "local": "10.18.1.0", "prefixlen": 32},
                {"family": "inet6", "local": "fe80::47:aff:fe12:100", "prefixlen": 64},
            ],
        },
        {
            "ifname": "grove-svc",
            "flags": ["UP"],
            "mtu": 1500,
            "linkinfo": {"info_kind": "bridge"},
            "addr_info": [],
        },
    ]
)
ROUTES_JSON = json.dumps(
    [
        {"type": "unreachable", "dst": "10.18.0.0/16", "metric": 4280, "flags": []},
        {"dst": "10.18.2.0/24", "gateway": "10.18.2.0", "dev": "grove-vx", "flags": ["onlink"]},
        {"dst": "10.18.3.0/24", "gateway": "10.18.3.0", "dev": "grove-vx", "flags": ["onlink"]},
        {"dst": "10.30.0.0/16", "dev": "grove-svc", "scope": "link", "flags": []},
    ]
)
NEIGH_JSON = json.dumps(
    [
        {"dst": "10.18.2.0", "lladdr": "02:47:0a:12:02:00", "state": ["PERMANENT"]},
        {"dst": "10.18.3.0", "lladdr": "02:47:0A:12:03:00", "state": ["PERMANENT"]},
        {"dst": "10.18.9.9", "lladdr": "aa:bb:cc:dd:ee:ff", "state": ["STALE"]},
    ]
)
FDB_JSON = json.dumps(
    [
        {"mac": "02:47:0a:12:02:00", "dst": "10.99.1.12", "flags": ["self"], "state": "permanent"},
        {"mac": "02:47:0a:12:03:00", "dst": "10.99.2.11", "flags": ["self"], "state": "permanent"},
        {"mac": "33:33:00:00:00:01", "flags": ["self"], "state": "permanent"},
    ]
)


def live_from_json():
    return ov.State(
        links=ov.parse_links(ADDR_JSON, ("grove-vx", "grove-svc")),
        routes=ov.parse_routes(ROUTES_JSON),
        neighbours=ov.parse_neighbours(NEIGH_JSON, "grove-vx"),
        fdb=ov.parse_fdb(FDB_JSON, "grove-vx"),
        forwarding=True,
    )


def test_the_live_state_read_from_ip_json_matches_the_desired_one():
    assert ov.plan(desired(), live_from_json()) == []


def test_the_underlay_is_the_link_that_holds_the_local_address():
    assert ov.underlay_of(ADDR_JSON, config().local) == ("eth0", 1500)
    assert ov.underlay_of(ADDR_JSON, ov.check_config(dict(BASE, local="10.99.1.99")).local) == (None, 0)


def test_unreadable_ip_output_is_an_error():
    with pytest.raises(ov.OverlayError, match="cannot read"):
        ov.parse_routes("{not json")


def test_the_table_keeps_instance_addresses_and_clamps_mss_only_with_vxlan():
    vxlan = ov.render_table(config())
    assert "ip saddr 10.18.0.0/16 ip daddr 10.18.0.0/16 snat to ip saddr" in vxlan
    assert 'oifname "grove-vx" tcp flags syn / syn,rst tcp option maxseg size set rt mtu' in vxlan
    assert "maxseg" not in ov.render_table(config(mode="routes"))
