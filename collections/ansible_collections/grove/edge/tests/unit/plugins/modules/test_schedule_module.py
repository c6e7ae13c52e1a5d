"""The grove.edge.schedule module: its documentation, and real runs of the module file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.grove.edge.plugins.modules import descriptor as descriptor_module
from ansible_collections.grove.edge.plugins.modules import instance as instance_module
from ansible_collections.grove.edge.plugins.modules import node_info as node_info_module
from ansible_collections.grove.edge.plugins.modules import schedule as module

MODULE_FILE = Path(module.__file__)
DESCRIPTOR_MODULE_FILE = Path(descriptor_module.__file__)
HOSTILE = "{{ lookup('pipe','id') }}"


def worker(vcpus=2):
    return {
        "hostname": "h",
        "architecture": "amd64",
        "vcpus": vcpus,
        "memory_mb": 1024,
        "memory_free_mb": 1024,
        "gpus": [],
        "disk_free_mb": 1000,
        "runtimes": ["container"],
        "reachable": True,
        "instances": [],
    }


CLUSTERS = {"edge1": {"workers": {"w1": worker(), "w2": worker()}}}
DESCRIPTOR = {
    "sla_version": "v2.0",
    "customerID": "Admin",
    "applications": [
        {
            "applicationID": "",
            "application_name": "clientsrvr",
            "application_namespace": "test",
            "application_desc": "demo",
            "microservices": [
                {
                    "microservice_name": "curl",
                    "microservice_namespace": "test",
                    "virtualization": "container",
                    "cmd": ["sh", "-c", HOSTILE],
                    "environment": [f"X={HOSTILE}"],
                    "memory": 100,
                    "vcpus": 1,
                    "code": "docker.io/curlimages/curl:latest",
                    "port": "9080",
                },
                {
                    "microservice_name": "nginx",
                    "microservice_namespace": "test",
                    "virtualization": "container",
                    "memory": 100,
                    "vcpus": 1,
                    "code": "docker.io/library/nginx:latest",
                    "port": "6080:80/tcp",
                },
            ],
        }
    ],
}


def run_module(tmp_path, module_file=MODULE_FILE, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    process = subprocess.run(
        [sys.executable, str(module_file), str(args_file)],
        # The collection is importable from the installed environment: no PYTHONPATH needed.
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.stdout, process.stderr
    return json.loads(process.stdout)


# --- documentation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DOCUMENTATION", "EXAMPLES", "RETURN"])
def test_documentation_is_yaml(name):
    assert yaml.safe_load(getattr(module, name))


def _compare(doc_options, spec, where):
    assert set(doc_options) == set(spec), where
    for name, option in spec.items():
        doc = doc_options[name]
        assert doc.get("type", "str") == option.get("type", "str"), f"{where}.{name}"
        assert doc.get("required", False) == option.get("required", False), f"{where}.{name}"
        assert doc.get("default") == option.get("default"), f"{where}.{name}"
        assert doc.get("choices") == option.get("choices"), f"{where}.{name}"
        assert doc.get("elements") == option.get("elements"), f"{where}.{name}"
        assert doc.get("description"), f"{where}.{name}"
        if "options" in option:
            _compare(doc["suboptions"], option["options"], f"{where}.{name}")
        else:
            assert "suboptions" not in doc, f"{where}.{name}"


@pytest.mark.parametrize("plugin", [module, descriptor_module, instance_module, node_info_module])
def test_documentation_matches_the_argument_spec(plugin):
    documentation = yaml.safe_load(plugin.DOCUMENTATION)
    assert documentation["module"] == Path(plugin.__file__).stem
    _compare(documentation["options"], plugin.ARGUMENT_SPEC, "options")


def test_examples_use_only_documented_options():
    documented = set(yaml.safe_load(module.DOCUMENTATION)["options"])
    for task in yaml.safe_load(module.EXAMPLES):
        if "grove.edge.schedule" in task:
            assert set(task["grove.edge.schedule"]) <= documented


# --- real runs -------------------------------------------------------------------------------


def test_places_services(tmp_path):
    result = run_module(
        tmp_path,
        services=[{"service": "a.b.c.d", "requirements": {"vcpus": 1}, "instance_numbers": [0, 1]}],
        clusters=CLUSTERS,
    )
    assert result["changed"] is False
    assert "failed" not in result
    assert [(p["worker"], p["instance_number"]) for p in result["placements"]] == [("w1", 0), ("w2", 1)]
    assert result["failures"] == []


def test_check_mode_gives_the_same_answer(tmp_path):
    args = {"services": [{"service": "a.b.c.d", "requirements": {"vcpus": 1}}], "clusters": CLUSTERS}
    normal = run_module(tmp_path, **args)
    checked = run_module(tmp_path, _ansible_check_mode=True, **args)
    assert checked["changed"] is False
    assert checked["placements"] == normal["placements"]


def test_fails_when_something_cannot_be_placed(tmp_path):
    result = run_module(
        tmp_path,
        services=[
            {
                "service": "a.b.c.d",
                "requirements": {"vcpus": 3},
                "constraints": [{"type": "direct", "cluster": "edge1"}],
            }
        ],
        clusters=CLUSTERS,
    )
    assert result["failed"] is True
    assert result["msg"].splitlines() == [
        "1 instance(s) could not be placed:",
        "a.b.c.d instance 0: NO_WORKER_CAPACITY "
        "(edge1/w1: needs 3 vcpus, 2 free; edge1/w2: needs 3 vcpus, 2 free)",
    ]
    assert result["failures"][0]["status"] == "NO_WORKER_CAPACITY"


def test_can_report_unplaced_instances_without_failing(tmp_path):
    result = run_module(
        tmp_path,
        services=[{"service": "a.b.c.d", "requirements": {"vcpus": 1}, "instance_numbers": [0, 1, 2, 3, 4]}],
        clusters=CLUSTERS,
        fail_on_unplaced=False,
    )
    assert "failed" not in result
    assert len(result["placements"]) == 4
    assert [f["instance_number"] for f in result["failures"]] == [4]


def test_services_are_required(tmp_path):
    result = run_module(tmp_path, clusters=CLUSTERS)
    assert result["failed"] is True
    assert "services" in result["msg"]


def test_places_what_the_descriptor_module_lists(tmp_path):
    plan = run_module(tmp_path, module_file=DESCRIPTOR_MODULE_FILE, content=DESCRIPTOR, instances=2)
    assert "failed" not in plan, plan.get("msg")
    result = run_module(tmp_path, services=plan["services"], clusters=CLUSTERS)
    assert "failed" not in result, result.get("msg")
    assert [(p["service"], p["instance_number"], p["worker"]) for p in result["placements"]] == [
        ("clientsrvr.test.curl.test", 0, "w1"),
        ("clientsrvr.test.curl.test", 1, "w2"),
        ("clientsrvr.test.nginx.test", 0, "w1"),
        ("clientsrvr.test.nginx.test", 1, "w2"),
    ]


def test_malformed_facts_fail_cleanly(tmp_path):
    result = run_module(
        tmp_path, services=[{"service": "a.b.c.d"}], clusters={"edge1": {"workers": {"w1": "down"}}}
    )
    assert result["failed"] is True
    assert result["msg"].startswith("cannot schedule: clusters.edge1.workers.w1")
