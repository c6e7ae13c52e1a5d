"""The grove.edge.descriptor module: validation errors, instance lists, data kept verbatim."""

import json

from test_schedule_module import DESCRIPTOR, DESCRIPTOR_MODULE_FILE, HOSTILE, run_module


def run(tmp_path, **args):
    return run_module(tmp_path, module_file=DESCRIPTOR_MODULE_FILE, **args)


def test_lists_every_instance_with_its_options_verbatim(tmp_path):
    result = run(tmp_path, content=DESCRIPTOR, instances=2)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False
    assert result["service_names"] == ["clientsrvr.test.curl.test", "clientsrvr.test.nginx.test"]
    assert [s["instance_numbers"] for s in result["services"]] == [[0, 1], [0, 1]]
    curl = result["instances"]["clientsrvr.test.curl.test.instance.1"]
    assert curl["instance_number"] == 1
    assert curl["cmd"] == ["sh", "-c", HOSTILE]
    assert curl["env"] == [f"X={HOSTILE}"]
    assert curl["ports"] == "9080:9080/tcp"


def test_reads_a_descriptor_file(tmp_path):
    path = tmp_path / "descriptor.json"
    path.write_text(json.dumps(DESCRIPTOR))
    result = run(tmp_path, path=str(path))
    assert sorted(result["instances"]) == [
        "clientsrvr.test.curl.test.instance.0",
        "clientsrvr.test.nginx.test.instance.0",
    ]
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
    assert list(only["instances"]) == ["clientsrvr.test.nginx.test.instance.4"]
    bad = run(tmp_path, content=DESCRIPTOR, instance_counts={"no.such.service.x": 1})
    assert bad["failed"] is True
    assert "no.such.service.x" in bad["msg"]
    negative = run(tmp_path, content=DESCRIPTOR, instance_counts={"clientsrvr.test.nginx.test": -1})
    assert negative["failed"] is True
    assert "instance_counts.clientsrvr.test.nginx.test" in negative["msg"]


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
