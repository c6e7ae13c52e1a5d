"""The grove.edge.descriptor module: validation errors, instance lists, data kept verbatim."""

import json

from test_schedule_module import DESCRIPTOR, DESCRIPTOR_MODULE_FILE, HOSTILE, run_module


def run(tmp_path, **args):
    return run_module(tmp_path, module_file=DESCRIPTOR_MODULE_FILE, **args)


def test_lists_every_service_with_its_spec_verbatim(tmp_path):
    result = run(tmp_path, content=DESCRIPTOR, instances=2)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False
    assert result["service_names"] == ["clientsrvr.test.curl.test", "clientsrvr.test.nginx.test"]
    assert [s["instance_numbers"] for s in result["services"]] == [[0, 1], [0, 1]]
    curl = result["specs"]["clientsrvr.test.curl.test"]
    assert curl["cmd"] == ["sh", "-c", HOSTILE]
    assert curl["ports"] == "9080:9080/tcp"
    # The environment (secrets, often) is only returned when asked for, to a no_log task.
    assert HOSTILE not in json.dumps(result).replace(json.dumps(curl["cmd"]), "")
    assert "environment" not in result and "env" not in curl


def test_the_environment_is_returned_only_on_its_own(tmp_path):
    result = run(tmp_path, content=DESCRIPTOR, environment=True)
    assert result["environment"] == {
        "clientsrvr.test.curl.test": [f"X={HOSTILE}"],
        "clientsrvr.test.nginx.test": [],
    }
    assert "specs" not in result and "services" not in result


def test_reads_a_descriptor_file(tmp_path):
    path = tmp_path / "descriptor.json"
    path.write_text(json.dumps(DESCRIPTOR))
    result = run(tmp_path, path=str(path))
    assert sorted(result["specs"]) == ["clientsrvr.test.curl.test", "clientsrvr.test.nginx.test"]
    assert [s["instance_numbers"] for s in result["services"]] == [[0], [0]]
    missing = run(tmp_path, path=str(tmp_path / "nope.json"))
    assert missing["failed"] is True
    assert "nope.json: cannot read it" in missing["msg"]


def test_instance_counts_service_and_instance_filters(tmp_path):
    result = run(tmp_path, content=DESCRIPTOR, instances=0, instance_counts={"clientsrvr.test.nginx.test": 3})
    assert [(s["service"], s["instance_numbers"]) for s in result["services"]] == [
        ("clientsrvr.test.curl.test", []),
        ("clientsrvr.test.nginx.test", [0, 1, 2]),
    ]
    only = run(tmp_path, content=DESCRIPTOR, service="clientsrvr.test.nginx.test", instance=4)
    assert [(s["service"], s["instance_numbers"]) for s in only["services"]] == [
        ("clientsrvr.test.nginx.test", [4])
    ]
    assert list(only["specs"]) == ["clientsrvr.test.nginx.test"]
    bad = run(tmp_path, content=DESCRIPTOR, instance_counts={"no.such.service.x": 1})
    assert bad["failed"] is True
    assert "no.such.service.x" in bad["msg"]
    negative = run(tmp_path, content=DESCRIPTOR, instance_counts={"clientsrvr.test.nginx.test": -1})
    assert negative["failed"] is True
    assert "instance_counts.clientsrvr.test.nginx.test" in negative["msg"]


def test_an_instances_file_names_exactly_the_numbers_to_run(tmp_path):
    numbers = tmp_path / "instances.json"
    numbers.write_text(json.dumps({"clientsrvr.test.nginx.test": [5, 2, 2], "clientsrvr.test.curl.test": []}))
    result = run(tmp_path, content=DESCRIPTOR, instances_path=str(numbers), instances=3)
    assert [(s["service"], s["instance_numbers"]) for s in result["services"]] == [
        ("clientsrvr.test.curl.test", []),
        ("clientsrvr.test.nginx.test", [2, 5]),
    ]
    assert result["removed_services"] == []
    numbers.write_text(json.dumps({"clientsrvr.test.nginx.test": None}))
    gone = run(tmp_path, content=DESCRIPTOR, instances_path=str(numbers))
    assert gone["removed_services"] == ["clientsrvr.test.nginx.test"]
    assert [s["instance_numbers"] for s in gone["services"]] == [[0], []]
    # A removed service loses its address too: it is left out of what the service tables get.
    assert [n["service"] for n in gone["network"]] == ["clientsrvr.test.curl.test"]
    numbers.write_text(json.dumps({"clientsrvr.test.nginx.test": [-1]}))
    assert (
        "must be a list of non-negative integers"
        in run(tmp_path, content=DESCRIPTOR, instances_path=str(numbers))["msg"]
    )
    numbers.write_text(json.dumps({"x.y.z.w": [0]}))
    assert "no service named x.y.z.w" in run(tmp_path, content=DESCRIPTOR, instances_path=str(numbers))["msg"]


def test_network_data_of_each_service(tmp_path):
    addressed = json.loads(json.dumps(DESCRIPTOR))
    addressed["applications"][0]["microservices"][1]["addresses"] = {"rr_ip": "10.30.5.5"}
    result = run(tmp_path, content=addressed, networking=True)
    assert result["network"] == [
        {"service": "clientsrvr.test.curl.test", "rr_ip": "", "port": "9080"},
        {"service": "clientsrvr.test.nginx.test", "rr_ip": "10.30.5.5", "port": "6080:80/tcp"},
    ]
    assert "warnings" not in result
    # Without the networking role, a fixed address is said not to be routed.
    unrouted = run(tmp_path, content=addressed)
    assert "10.30.5.5 is not routed" in json.dumps(unrouted["warnings"])


def test_privileged_microservices_need_the_operators_consent(tmp_path):
    privileged = json.loads(json.dumps(DESCRIPTOR))
    privileged["applications"][0]["microservices"][1]["privileged"] = True
    refused = run(tmp_path, content=privileged)
    assert refused["failed"] is True
    assert refused["errors"] == [
        "applications[0].microservices[1].privileged: "
        "privileged instances are not allowed here (root on the worker)"
    ]
    allowed = run(tmp_path, content=privileged, allow_privileged=True)
    assert allowed["specs"]["clientsrvr.test.nginx.test"]["privileged"] is True


def test_fields_grove_does_not_honour_yet_are_warned_about(tmp_path):
    noted = json.loads(json.dumps(DESCRIPTOR))
    noted["applications"][0]["microservices"][1].update({"vtpus": 2, "added_files": ["x.conf"]})
    result = run(tmp_path, content=noted)
    assert "failed" not in result
    # ansible-core 2.19 returns warnings as structured events.
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]
    assert any("microservices[1].vtpus: is not honoured" in warning for warning in warnings)
    assert any("microservices[1].added_files: is not honoured yet" in warning for warning in warnings)
    assert "warnings" not in run(tmp_path, content=DESCRIPTOR)


def test_every_descriptor_error_is_reported_with_its_path(tmp_path):
    broken = json.loads(json.dumps(DESCRIPTOR))
    broken["sla_version"] = "v9"
    broken["applications"][0]["microservices"][1]["port"] = "0:80"
    broken["applications"][0]["microservices"][1]["addresses"] = {"rr_ip": "10.99.0.1"}
    result = run(tmp_path, content=broken)
    assert result["failed"] is True
    assert [line.split(":")[0] for line in result["errors"]] == [
        "sla_version",
        "applications[0].microservices[1].port",
        "applications[0].microservices[1].addresses.rr_ip",
    ]
    rr_ip = "applications[0].microservices[1].addresses.rr_ip"
    assert f"{rr_ip}: 10.99.0.1 is outside 10.30.0.0/16" in result["msg"]


def test_path_and_content_are_exclusive(tmp_path):
    result = run(tmp_path, content=DESCRIPTOR, path="/x.json")
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]
    result = run(tmp_path)
    assert result["failed"] is True
    assert "one of the following is required" in result["msg"]
