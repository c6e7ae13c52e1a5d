"""Planning the workers' instance subnets: explicit, recorded, remembered, allocated; never two alike."""

import ipaddress
import json

import pytest
from ansible_collections.grove.edge.plugins.module_utils._subnet_pool import (
    Member,
    SubnetError,
    parse_record,
    plan_subnets,
    render_record,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def test_new_workers_get_the_lowest_free_subnets_in_name_order():
    plan = plan_subnets([Member("w2"), Member("w1"), Member("w3")])
    assert plan == {"w1": "10.18.0.0/24", "w2": "10.18.1.0/24", "w3": "10.18.2.0/24"}


def test_explicit_and_recorded_subnets_are_kept_and_skipped_by_allocation():
    plan = plan_subnets(
        [Member("a", explicit="10.18.0.0/24"), Member("b", recorded="10.18.2.0/24"), Member("c"), Member("d")]
    )
    assert plan == {"a": "10.18.0.0/24", "b": "10.18.2.0/24", "c": "10.18.1.0/24", "d": "10.18.3.0/24"}


def test_a_worker_keeps_its_subnet_when_others_are_added_or_removed():
    first = plan_subnets([Member("m"), Member("z")])
    records = dict(first)
    # "a" joins (it sorts first) and nobody else's subnet moves.
    second = plan_subnets(
        [Member("a")] + [Member(n, recorded=s, remembered=first) for n, s in records.items()]
    )
    assert second["m"] == first["m"] and second["z"] == first["z"]
    assert second["a"] not in first.values()
    # "m" leaves: "z" keeps its subnet; m's subnet is free again for a newcomer.
    third = plan_subnets([Member("z", recorded=second["z"], remembered=second), Member("b")])
    assert third["z"] == first["z"]
    assert third["b"] == first["m"]


def test_a_worker_that_cannot_be_read_gets_back_what_the_others_remember():
    remembered = {"down": "10.18.7.0/24", "up": "10.18.1.0/24"}
    plan = plan_subnets(
        [Member("up", recorded="10.18.1.0/24", remembered=remembered), Member("down"), Member("new")]
    )
    assert plan["down"] == "10.18.7.0/24"
    assert plan["new"] == "10.18.0.0/24"


def test_the_majority_memory_wins_and_a_clashing_memory_is_ignored():
    members = [
        Member("a", recorded="10.18.1.0/24", remembered={"x": "10.18.5.0/24"}),
        Member("b", recorded="10.18.2.0/24", remembered={"x": "10.18.6.0/24"}),
        Member("c", recorded="10.18.3.0/24", remembered={"x": "10.18.6.0/24", "y": "10.18.1.0/24"}),
        Member("x"),
        Member("y"),
    ]
    plan = plan_subnets(members)
    assert plan["x"] == "10.18.6.0/24"
    # y's remembered subnet now belongs to a, so y gets a fresh one.
    assert plan["y"] == "10.18.0.0/24"


def test_damaged_memories_are_only_hints():
    plan = plan_subnets(
        [Member("a", remembered={"b": "not a subnet", "c": "192.168.0.0/24"}), Member("b"), Member("c")]
    )
    assert sorted(plan.values()) == ["10.18.0.0/24", "10.18.1.0/24", "10.18.2.0/24"]


def test_an_explicit_subnet_that_contradicts_the_record_names_the_worker_and_both_subnets():
    with pytest.raises(SubnetError) as error:
        plan_subnets([Member("c1w1", explicit="10.18.5.0/24", recorded="10.18.1.0/24")])
    message = str(error.value)
    assert "c1w1" in message and "10.18.5.0/24" in message and "10.18.1.0/24" in message


def test_overlapping_claims_name_both_workers():
    with pytest.raises(SubnetError) as error:
        plan_subnets([Member("a", explicit="10.18.0.0/23"), Member("b", recorded="10.18.1.0/24")])
    assert "a and b" in str(error.value)


@pytest.mark.parametrize(
    "member, reason",
    [
        (Member("a", explicit="10.18.1.1/24"), "not an IPv4 network address"),
        (Member("a", explicit="fd00::/64"), "not an IPv4 network"),
        (Member("a", explicit="10.19.0.0/24"), "outside the pool"),
        (Member("a", explicit="{{ lookup('pipe','id') }}"), "not an IPv4 network address"),
    ],
)
def test_bad_subnets_are_refused(member, reason):
    with pytest.raises(SubnetError, match=reason):
        plan_subnets([member])


def test_pool_exhaustion_names_the_worker_left_without():
    with pytest.raises(SubnetError, match="no free /26 subnet left for c"):
        plan_subnets([Member("a"), Member("b"), Member("c")], pool="10.18.0.0/25", prefix=26)


@pytest.mark.parametrize("prefix", [15, 31, True, "24"])
def test_prefix_must_fit_the_pool(prefix):
    with pytest.raises(SubnetError, match="prefix length"):
        plan_subnets([Member("a")], pool="10.18.0.0/16", prefix=prefix)


def test_duplicate_hosts_are_refused():
    with pytest.raises(SubnetError, match="more than once: a"):
        plan_subnets([Member("a"), Member("a")])


def test_the_record_round_trips():
    text = render_record("10.18.1.0/24", "10.18.0.0/16", {"b": "10.18.2.0/24", "a": "10.18.1.0/24"})
    record = parse_record(text)
    assert record["instance_subnet"] == "10.18.1.0/24"
    assert list(record["allocations"]) == ["a", "b"]
    assert text == render_record("10.18.1.0/24", "10.18.0.0/16", {"a": "10.18.1.0/24", "b": "10.18.2.0/24"})


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({"instance_subnet": "nope"}), "instance_subnet"),
        (json.dumps({"allocations": ["a"]}), "allocations"),
    ],
)
def test_a_damaged_record_is_an_error_naming_the_file(text, reason):
    with pytest.raises(SubnetError, match=reason) as error:
        parse_record(text, "/etc/grove/network.json")
    assert "/etc/grove/network.json" in str(error.value)


def test_an_empty_record_is_no_record():
    assert parse_record("") == {}


names = st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=1, max_size=12, unique=True)


@settings(max_examples=200, deadline=None)
@given(names=names, data=st.data())
def test_plans_never_overlap_and_keep_every_existing_claim(names, data):
    pool = ipaddress.ip_network("10.18.0.0/20")
    subnets = list(pool.subnets(new_prefix=24))
    claimed = data.draw(st.lists(st.sampled_from(subnets), max_size=len(names), unique=True))
    members, claims = [], {}
    for index, subnet in enumerate(claimed):
        name = names[index]
        kind = data.draw(st.sampled_from(["explicit", "recorded"]))
        members.append(Member(name, **{kind: str(subnet)}))
        claims[name] = str(subnet)
    members += [Member(name) for name in names[len(claimed) :]]
    plan = plan_subnets(members, pool=str(pool), prefix=24)
    assert set(plan) == set(names)
    assert len(set(plan.values())) == len(names)
    for name, subnet in claims.items():
        assert plan[name] == subnet
    # Running again with everything recorded changes nothing.
    again = plan_subnets(
        [Member(n, recorded=s, remembered=plan) for n, s in plan.items()], pool=str(pool), prefix=24
    )
    assert again == plan
