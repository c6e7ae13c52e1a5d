"""The network_plan and service_table filters, fed host variables as Ansible's hostvars would."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.grove.edge.plugins.filter.network_plan import network_plan
from ansible_collections.grove.edge.plugins.filter.service_table import service_table


def host(name, address, **extra):
    return dict({"inventory_hostname": name, "ansible_host": address}, **extra)


def read(subnet="", allocations=None):
    record = {"instance_subnet": subnet, "allocations": allocations or {}} if subnet or allocations else {}
    return {"changed": False, "record": record, "subnet": subnet}


def test_plan_combines_variables_records_and_memories():
    hosts = [
        host("c1w1", "10.99.1.11", grove_instance_subnet="10.18.1.0/24", grove_network_record=read()),
        host("c1w2", "10.99.1.12", grove_network_record=read("10.18.4.0/24", {"c2w1": "10.18.9.0/24"})),
        # c2w1 did not answer: no registered result, but c1w2 remembers its subnet.
        host("c2w1", "10.99.2.11"),
        host(
            "c2w2",
            "10.99.2.12",
            grove_network_record={"unreachable": True},
            grove_network_underlay_address="10.98.0.2",
        ),
    ]
    assert network_plan(hosts) == [
        {"name": "c1w1", "subnet": "10.18.1.0/24", "underlay": "10.99.1.11"},
        {"name": "c1w2", "subnet": "10.18.4.0/24", "underlay": "10.99.1.12"},
        {"name": "c2w1", "subnet": "10.18.9.0/24", "underlay": "10.99.2.11"},
        {"name": "c2w2", "subnet": "10.18.0.0/24", "underlay": "10.98.0.2"},
    ]


def test_plan_errors_name_the_workers():
    with pytest.raises(AnsibleFilterError, match="a and b both claim"):
        network_plan(
            [
                host("a", "10.0.0.1", grove_instance_subnet="10.18.1.0/24"),
                host("b", "10.0.0.2", grove_instance_subnet="10.18.1.0/24"),
            ]
        )
    with pytest.raises(AnsibleFilterError, match="a and b have the same underlay address"):
        network_plan([host("a", "10.0.0.1"), host("b", "10.0.0.1")])
    with pytest.raises(
        AnsibleFilterError, match=r"a: underlay address 'edge-a\.example' is not an IPv4 address"
    ):
        network_plan([host("a", "edge-a.example")])


def node_info(*instances):
    return {"changed": False, "node": {"instances": list(instances)}}


def info(*services):
    return {"changed": False, "exists": True, "services": list(services)}


NGINX = "clientsrvr.test.nginx.test"
OLD = {"service": "old.app.web.ns", "rr_ip": "10.30.4.4", "ports": ["80/tcp"], "backends": []}


def test_service_table_keeps_the_majority_record_and_collects_backends_from_every_worker():
    hosts = [
        host(
            "w1",
            "10.99.1.11",
            grove_service_address_info=info(OLD),
            grove_node_info=node_info({"service": NGINX, "status": "RUNNING", "address": "10.18.1.2"}),
        ),
        host(
            "w2",
            "10.99.1.12",
            grove_service_address_info=info(OLD),
            grove_node_info=node_info(
                {"service": NGINX, "status": "RUNNING", "address": "10.18.2.2"},
                {"service": "old.app.web.ns", "status": "RUNNING", "address": "10.18.2.3"},
            ),
        ),
        # A worker that missed an update disagrees; the majority wins.
        host(
            "w3",
            "10.99.1.13",
            grove_service_address_info=info(dict(OLD, rr_ip="10.30.7.7")),
            grove_node_info={"failed": True},
        ),
    ]
    table = service_table([{"service": NGINX, "rr_ip": "10.30.1.2", "port": "6080:80/tcp"}], hosts)
    assert table == [
        {"service": NGINX, "rr_ip": "10.30.1.2", "ports": ["80/tcp"], "backends": ["10.18.1.2", "10.18.2.2"]},
        {"service": "old.app.web.ns", "rr_ip": "10.30.4.4", "ports": ["80/tcp"], "backends": ["10.18.2.3"]},
    ]
    assert service_table([], hosts, removed=["old.app.web.ns"]) == []
    leaving = service_table(
        [],
        [
            dict(
                hosts[1],
                grove_node_info=node_info(
                    {"id": "x.instance.0", "service": NGINX, "status": "RUNNING", "address": "10.18.2.2"},
                    {"id": "x.instance.1", "service": NGINX, "status": "RUNNING", "address": "10.18.2.9"},
                ),
            )
        ],
        leaving=["x.instance.0"],
    )
    assert leaving == [dict(table[1], backends=[])]


def test_service_table_conflicts_name_both_services():
    hosts = [host("w1", "10.99.1.11", grove_service_address_info=info(OLD))]
    with pytest.raises(
        AnsibleFilterError,
        match=f"rr_ip 10.30.4.4 of service {NGINX} is already the round-robin "
        "address of service old.app.web.ns",
    ):
        service_table([{"service": NGINX, "rr_ip": "10.30.4.4"}], hosts)


def test_a_duplicate_leaving_one_worker_stays_a_backend_on_the_other():
    # A worker that was unreachable comes back with its old copy of an instance that moved: the
    # removal names that worker, and the copy that stays must keep serving the address.
    nginx_0 = NGINX + ".instance.0"
    copy = {"id": nginx_0, "service": NGINX, "status": "RUNNING"}
    hosts = [
        host("w1", "10.99.1.11", grove_node_info=node_info(dict(copy, address="10.18.1.2"))),
        host("w2", "10.99.1.12", grove_node_info=node_info(dict(copy, address="10.18.2.2"))),
    ]
    wanted = [{"service": NGINX, "rr_ip": "10.30.1.2", "port": "80"}]
    removal = {"worker": "w2", "service": NGINX, "instance_number": 0}
    (entry,) = service_table(wanted, hosts, leaving=[removal])
    assert entry["backends"] == ["10.18.1.2"]
    # A plain id still means that instance everywhere.
    (entry,) = service_table(wanted, hosts, leaving=[nginx_0])
    assert entry["backends"] == []
    with pytest.raises(AnsibleFilterError, match="leaving needs instance ids or removals"):
        service_table(wanted, hosts, leaving=[{"worker": "w2"}])
