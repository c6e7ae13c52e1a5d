"""Service addresses: RR_ip allocation and conflicts, ports, backends, and the rendered nftables table."""

import ipaddress
import re

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _service_address as sa
from ansible_collections.grove.edge.plugins.module_utils._nft import normalize
from hypothesis import given, settings
from hypothesis import strategies as st

NGINX = "clientsrvr.test.nginx.test"
CURL = "clientsrvr.test.curl.test"
HOSTILE = "{{ lookup('pipe','id') }}"


# --- allocation ------------------------------------------------------------------------------


def test_a_fixed_rr_ip_is_kept_and_others_are_derived_from_the_name():
    addresses = sa.assign_rr_ips({NGINX: "10.30.1.2", CURL: ""})
    assert addresses[NGINX] == "10.30.1.2"
    assert ipaddress.IPv4Address(addresses[CURL]) in ipaddress.ip_network("10.30.0.0/16")
    assert sa.assign_rr_ips({CURL: ""}) == {CURL: addresses[CURL]}


def test_allocation_probes_past_taken_addresses():
    free = sa.assign_rr_ips({CURL: ""})[CURL]
    moved = sa.assign_rr_ips({CURL: ""}, taken={free: "a.b.c.d"})[CURL]
    assert moved == str(ipaddress.IPv4Address(free) + 1) or (
        free.endswith(".255.254") and moved == "10.30.0.1"
    )


def test_allocation_never_hands_out_the_network_or_broadcast_address():
    network = "10.30.0.0/30"  # two usable addresses
    got = sa.assign_rr_ips({"a.a.a.a": "", "b.b.b.b": ""}, network=network)
    assert sorted(got.values()) == ["10.30.0.1", "10.30.0.2"]
    with pytest.raises(sa.ServiceAddressError, match="no free address"):
        sa.assign_rr_ips({"a.a.a.a": "", "b.b.b.b": "", "c.c.c.c": ""}, network=network)


def test_a_fixed_rr_ip_that_another_service_holds_names_both():
    with pytest.raises(sa.RrIpConflict) as error:
        sa.assign_rr_ips({NGINX: "10.30.1.2"}, taken={"10.30.1.2": CURL})
    assert error.value.service == NGINX and error.value.other == CURL and error.value.address == "10.30.1.2"
    assert NGINX in str(error.value) and CURL in str(error.value)


def test_two_wanted_services_with_the_same_fixed_rr_ip_conflict():
    with pytest.raises(sa.RrIpConflict) as error:
        sa.assign_rr_ips({"a.a.a.a": "10.30.0.5", "b.b.b.b": "10.30.0.5"})
    assert {error.value.service, error.value.other} == {"a.a.a.a", "b.b.b.b"}


def test_a_current_address_is_kept_and_never_stolen_by_a_newcomer():
    first = sa.assign_rr_ips({CURL: ""})[CURL]
    # A newcomer whose hash lands on the same address must probe on, not take it.
    got = sa.assign_rr_ips({CURL: "", NGINX: ""}, current={CURL: "10.30.9.9"})
    assert got[CURL] == "10.30.9.9"
    assert got[NGINX] != "10.30.9.9"
    assert first  # the hashed address is only the default


@pytest.mark.parametrize(
    "rr_ip, reason",
    [
        ("10.31.0.1", "outside the service network"),
        ("10.30.0.0", "network or broadcast"),
        ("10.30.255.255", "network or broadcast"),
        ("nope", "not an IPv4 address"),
        (HOSTILE, "not an IPv4 address"),
    ],
)
def test_bad_fixed_rr_ips_are_refused(rr_ip, reason):
    with pytest.raises(sa.ServiceAddressError, match=reason):
        sa.assign_rr_ips({NGINX: rr_ip})


@pytest.mark.parametrize(
    "name", ["a.b.c", "a.b.c.d.e", "a.b.c.d\n", 'a.b.c.d"', HOSTILE, "x" * 31 + ".b.c.d", ""]
)
def test_service_names_must_be_four_plain_names(name):
    with pytest.raises(sa.ServiceAddressError, match="fully qualified service name"):
        sa.assign_rr_ips({name: ""})


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text("abcxyz0123", min_size=1, max_size=4), min_size=1, max_size=40, unique=True))
def test_allocations_are_unique_deterministic_and_order_free(names):
    wanted = {f"app.ns.{name}.ns": "" for name in names}
    first = sa.assign_rr_ips(wanted)
    assert len(set(first.values())) == len(wanted)
    assert sa.assign_rr_ips(dict(reversed(list(wanted.items())))) == first


# --- ports and backends ----------------------------------------------------------------------


def test_container_ports_come_from_the_descriptor_port_field():
    assert sa.container_ports("6080:80/tcp") == ["80/tcp"]
    assert sa.container_ports("9080") == ["9080/tcp"]
    assert sa.container_ports("1:53/udp; 2:53/UDP ;8080:80") == ["53/udp", "80/tcp"]
    assert sa.container_ports("") == []
    with pytest.raises(sa.ServiceAddressError, match="protocol"):
        sa.container_ports("80/sctp")


def test_running_backends_only():
    instances = [
        {"service": NGINX, "status": "RUNNING", "address": "10.18.2.2"},
        {"service": NGINX, "status": "RUNNING", "address": "10.18.1.2"},
        {"service": NGINX, "status": "FAILED", "address": "10.18.1.3"},
        {"service": NGINX, "status": "RUNNING", "address": ""},
        {"service": CURL, "status": "CREATING", "address": "10.18.1.4"},
    ]
    assert sa.running_backends(instances) == {NGINX: ["10.18.1.2", "10.18.2.2"]}


# --- parsing the module's services -----------------------------------------------------------


def service(**overrides):
    return dict(
        {"service": NGINX, "rr_ip": "10.30.1.2", "ports": ["80/tcp"], "backends": ["10.18.1.2"]}, **overrides
    )


@pytest.mark.parametrize(
    "item, reason",
    [
        (service(service=HOSTILE), r"services\[0\].service"),
        (service(rr_ip="10.18.1.1"), r"services\[0\].rr_ip: 10.18.1.1 is outside"),
        (service(ports=["80/icmp"]), r"services\[0\].ports\[0\]: protocol"),
        (service(ports=["0"]), r"services\[0\].ports\[0\]"),
        (service(ports="80"), r"services\[0\].ports: must be a list"),
        (
            service(backends=["192.168.1.1"]),
            r"services\[0\].backends\[0\]: 192.168.1.1 is not an instance address",
        ),
        (service(backends=["10.30.1.3"]), r"backends\[0\]: 10.30.1.3 is not an instance address"),
        (service(backends=["8.8.8.8"]), "not an instance address"),
        (service(backends=[HOSTILE]), "not an IPv4 address"),
        (service(backends=["10.18.0.0"]), "not an instance address"),
    ],
)
def test_bad_services_are_refused_with_the_field(item, reason):
    with pytest.raises(sa.ServiceAddressError, match=reason):
        sa.parse_services([item])


def test_one_address_for_two_services_is_a_conflict_naming_both():
    with pytest.raises(sa.RrIpConflict) as error:
        sa.parse_services([service(), service(service=CURL)])
    assert {error.value.service, error.value.other} == {NGINX, CURL}


def test_a_service_listed_twice_is_refused():
    with pytest.raises(sa.ServiceAddressError, match="listed twice"):
        sa.parse_services([service(), service(rr_ip="10.30.1.3")])


def test_networks_must_not_overlap():
    with pytest.raises(sa.ServiceAddressError, match="overlaps"):
        sa.parse_services([], service_network="10.0.0.0/8", instance_network="10.18.0.0/16")


# --- the table -------------------------------------------------------------------------------


def render(items, **kwargs):
    return sa.render_table(sa.parse_services(items), **kwargs)


def rules(table):
    lines = normalize(table)
    start = lines.index("chain services {") + 1
    return lines[start : lines.index("}", start)]


def test_backends_are_balanced_round_robin_in_a_stable_order():
    table = render([service(backends=["10.18.2.2", "10.18.1.3", "10.18.1.2", "10.18.1.3"])])
    assert rules(table) == [
        "ip daddr 10.30.1.2 tcp dport 80 dnat to numgen inc mod 3 map "
        '{ 0 : 10.18.1.2, 1 : 10.18.1.3, 2 : 10.18.2.2 } comment "clientsrvr.test.nginx.test"'
    ]
    assert table == render([service(backends=["10.18.1.2", "10.18.2.2", "10.18.1.3"])])


def test_one_backend_needs_no_map_and_several_ports_share_a_rule_per_protocol():
    table = render([service(ports=["8080", "53/udp", "80/tcp"], backends=["10.18.1.2"])])
    assert rules(table) == [
        'ip daddr 10.30.1.2 tcp dport { 80, 8080 } dnat to 10.18.1.2 comment "clientsrvr.test.nginx.test"',
        'ip daddr 10.30.1.2 udp dport 53 dnat to 10.18.1.2 comment "clientsrvr.test.nginx.test"',
    ]


def test_no_ports_means_every_port_and_no_backend_means_return_to_the_reject():
    table = render(
        [service(ports=[], backends=[]), service(service=CURL, rr_ip="10.30.0.7", ports=[], backends=[])]
    )
    assert rules(table) == [
        'ip daddr 10.30.0.7 return comment "clientsrvr.test.curl.test"',
        'ip daddr 10.30.1.2 return comment "clientsrvr.test.nginx.test"',
    ]


def test_everything_left_for_the_service_network_is_rejected_and_hairpin_is_masqueraded():
    lines = normalize(render([service()], bridge="br-x"))
    assert 'iifname "br-x" ip daddr 10.30.0.0/16 jump services' in lines
    assert 'ct status dnat oifname "br-x" masquerade' in lines
    assert "ct status dnat ip saddr != 10.18.0.0/16 masquerade" in lines
    assert lines.count("ip daddr 10.30.0.0/16 reject with tcp reset") == 2  # forward and output
    assert lines.count("ip daddr 10.30.0.0/16 reject") == 2


def test_the_only_dnat_targets_are_backends_inside_the_instance_network():
    table = render([service(backends=["10.18.1.2", "10.18.7.9"]), service(service=CURL, rr_ip="10.30.0.3")])
    targets = set()
    for line in rules(table):
        if "dnat to" in line:
            targets |= set(re.findall(r"\d+\.\d+\.\d+\.\d+", line.split("dnat to", 1)[1]))
    assert targets == {"10.18.1.2", "10.18.7.9"}


def test_a_hostile_bridge_name_cannot_reach_the_ruleset():
    with pytest.raises(sa.ServiceAddressError, match="bridge"):
        render([service()], bridge='grove0" accept; #')


def test_the_live_table_is_read_back_as_the_record():
    items = [
        service(backends=["10.18.1.2", "10.18.2.2"], ports=["80/tcp", "53/udp"]),
        service(service=CURL, rr_ip="10.30.0.3", ports=[], backends=[]),
        service(service="a.b.c.d", rr_ip="10.30.0.4", ports=["9000"], backends=["10.18.3.3"]),
    ]
    found = sa.services_in_table(render(items))
    assert found == [
        {"service": "a.b.c.d", "rr_ip": "10.30.0.4", "ports": ["9000/tcp"], "backends": ["10.18.3.3"]},
        {"service": CURL, "rr_ip": "10.30.0.3", "ports": [], "backends": []},
        {
            "service": NGINX,
            "rr_ip": "10.30.1.2",
            "ports": ["80/tcp", "53/udp"],
            "backends": ["10.18.1.2", "10.18.2.2"],
        },
    ]
    assert sa.services_in_table(None) == []


# --- the complete list for playbooks ----------------------------------------------------------


RECORDED = [
    {"service": CURL, "rr_ip": "10.30.0.3", "ports": [], "backends": []},
    {"service": "other.app.web.ns", "rr_ip": "10.30.5.5", "ports": ["8080/tcp"], "backends": ["10.18.9.9"]},
]
INSTANCES = [
    {"service": NGINX, "status": "RUNNING", "address": "10.18.1.2"},
    {"service": "other.app.web.ns", "status": "RUNNING", "address": "10.18.2.7"},
]


def test_desired_services_keep_recorded_addresses_and_take_backends_from_the_instances():
    result = sa.desired_services(
        [{"service": NGINX, "rr_ip": "", "port": "6080:80/tcp"}, {"service": CURL, "port": "9080"}],
        recorded=RECORDED,
        instances=INSTANCES,
    )
    by_name = {entry["service"]: entry for entry in result}
    assert by_name[CURL]["rr_ip"] == "10.30.0.3" and by_name[CURL]["ports"] == ["9080/tcp"]
    assert by_name[NGINX]["ports"] == ["80/tcp"] and by_name[NGINX]["backends"] == ["10.18.1.2"]
    assert by_name["other.app.web.ns"] == {
        "service": "other.app.web.ns",
        "rr_ip": "10.30.5.5",
        "ports": ["8080/tcp"],
        "backends": ["10.18.2.7"],
    }


def test_a_fixed_rr_ip_held_by_a_deployed_service_names_both():
    with pytest.raises(sa.RrIpConflict) as error:
        sa.desired_services([{"service": NGINX, "rr_ip": "10.30.5.5"}], recorded=RECORDED)
    assert error.value.service == NGINX and error.value.other == "other.app.web.ns"


def test_removed_services_leave_the_list():
    result = sa.desired_services([], recorded=RECORDED, removed=[CURL])
    assert [entry["service"] for entry in result] == ["other.app.web.ns"]
