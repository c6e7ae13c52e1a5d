"""SLA v2 descriptor validation and model (module_utils/_descriptor.py)."""

import copy
import json
from pathlib import Path

import pytest
from ansible_collections.grove.edge.plugins.module_utils._descriptor import (
    Constraint,
    DescriptorError,
    FieldError,
    instance_id,
    parse_descriptor,
    privileged_errors,
    service_fqn,
    unhonoured_fields,
    validate_descriptor,
)
from ansible_collections.grove.edge.plugins.module_utils._instance import SPEC_OPTIONS
from ansible_collections.grove.edge.plugins.module_utils._ports import PortError, PortMapping, parse_ports

# The seed's "Deploy your first app" descriptor, with real images in `code`.
SEED = {
    "sla_version": "v2.0",
    "customerID": "Admin",
    "applications": [
        {
            "applicationID": "",
            "application_name": "clientsrvr",
            "application_namespace": "test",
            "application_desc": "Simple demo with curl client and Nginx server",
            "microservices": [
                {
                    "microserviceID": "",
                    "microservice_name": "curl",
                    "microservice_namespace": "test",
                    "virtualization": "container",
                    "cmd": ["sh", "-c", "tail -f /dev/null"],
                    "memory": 100,
                    "vcpus": 1,
                    "vgpus": 0,
                    "vtpus": 0,
                    "bandwidth_in": 0,
                    "bandwidth_out": 0,
                    "storage": 0,
                    "code": "docker.io/curlimages/curl:latest",
                    "state": "",
                    "port": "9080",
                    "added_files": [],
                },
                {
                    "microserviceID": "",
                    "microservice_name": "nginx",
                    "microservice_namespace": "test",
                    "virtualization": "container",
                    "cmd": [],
                    "memory": 100,
                    "vcpus": 1,
                    "vgpus": 0,
                    "vtpus": 0,
                    "bandwidth_in": 0,
                    "bandwidth_out": 0,
                    "storage": 0,
                    "code": "docker.io/library/nginx:latest",
                    "state": "",
                    "port": "6080:80/tcp",
                    "addresses": {"rr_ip": ""},
                    "added_files": [],
                },
            ],
        }
    ],
}
APP = "applications[0]"
CURL = "applications[0].microservices[0]"
NGINX = "applications[0].microservices[1]"
HOSTILE = "{{ lookup('pipe','id') }}"
EXAMPLE_FILE = Path(__file__).resolve().parents[8] / "examples" / "clientsrvr.json"


def seed():
    return copy.deepcopy(SEED)


def curl(descriptor):
    return descriptor["applications"][0]["microservices"][0]


def nginx(descriptor):
    return descriptor["applications"][0]["microservices"][1]


def paths(errors):
    return [error.path for error in errors]


def errors_at(descriptor, path):
    return [error for error in validate_descriptor(descriptor) if error.path == path]


def only_error(descriptor):
    errors = validate_descriptor(descriptor)
    assert len(errors) == 1, errors
    return errors[0]


# --- the seed -------------------------------------------------------------------------------


def test_seed_descriptor_is_valid():
    assert validate_descriptor(seed()) == []


@pytest.mark.skipif(not EXAMPLE_FILE.exists(), reason="examples/ is outside the collection")
def test_example_file_is_the_seed():
    assert json.loads(EXAMPLE_FILE.read_text()) == SEED


def test_seed_parses_into_the_model():
    descriptor = parse_descriptor(seed())
    assert descriptor.sla_version == "v2.0"
    assert descriptor.customerID == "Admin"
    [app] = descriptor.applications
    assert (app.application_name, app.application_namespace) == ("clientsrvr", "test")
    assert app.application_desc == "Simple demo with curl client and Nginx server"
    curl_service, nginx_service = app.microservices
    assert curl_service.fqn == "clientsrvr.test.curl.test"
    assert nginx_service.fqn == "clientsrvr.test.nginx.test"
    assert curl_service.cmd == ["sh", "-c", "tail -f /dev/null"]
    assert curl_service.ports == [PortMapping(9080, 9080, "tcp")]
    assert nginx_service.ports == [PortMapping(6080, 80, "tcp")]
    assert nginx_service.rr_ip == ""
    assert nginx_service.code == "docker.io/library/nginx:latest"
    assert (nginx_service.memory, nginx_service.vcpus, nginx_service.vgpus) == (100, 1, 0)
    assert descriptor.microservices() == [curl_service, nginx_service]


def test_sla_version_v02_is_accepted():
    descriptor = seed()
    descriptor["sla_version"] = "v0.2"
    assert validate_descriptor(descriptor) == []


def test_optional_oakestra_fields_are_accepted_and_parsed():
    descriptor = seed()
    service = nginx(descriptor)
    service.update(
        {
            "args": ["-g", "daemon off;"],
            "environment": ["MODE=edge", "EMPTY=", "EQ=a=b"],
            "one_shot": True,
            "privileged": False,
            "constraints": [{"type": "direct", "cluster": "edge1", "node": "w1;w2"}],
            "addresses": {"rr_ip": "10.30.0.5"},
            "vcpus": 0.5,
            "storage": 20,
            "bandwidth_in": 1000,
            "bandwidth_out": 500,
            "state": "",
            "added_files": ["a.conf"],
        }
    )
    assert validate_descriptor(descriptor) == []
    parsed = parse_descriptor(descriptor).applications[0].microservices[1]
    assert parsed.args == ["-g", "daemon off;"]
    assert parsed.env_entries() == ["MODE=edge", "EMPTY=", "EQ=a=b"]
    assert parsed.one_shot is True
    assert parsed.constraints == [Constraint("direct", "edge1", ("w1", "w2"))]
    assert parsed.rr_ip == "10.30.0.5"
    assert parsed.vcpus == 0.5


def test_unknown_keys_are_ignored():
    descriptor = seed()
    descriptor["api_version"] = {"nested": [1, 2]}
    descriptor["applications"][0]["extra"] = None
    nginx(descriptor)["connectivity"] = [{"target_microservice_id": "x", "con_constraints": []}]
    nginx(descriptor)["sla_violation_strategy"] = 42
    nginx(descriptor)["addresses"]["closest_ip"] = "whatever"
    nginx(descriptor)["constraints"] = [{"type": "direct", "cluster": "c", "threshold": "x"}]
    assert validate_descriptor(descriptor) == []
    assert parse_descriptor(descriptor).applications[0].microservices[1].fqn == "clientsrvr.test.nginx.test"


# --- required fields --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["sla_version", "customerID", "applications"])
def test_missing_top_level_field(key):
    descriptor = seed()
    del descriptor[key]
    assert only_error(descriptor) == FieldError(key, "is required")


@pytest.mark.parametrize("key", ["application_name", "application_namespace", "microservices"])
def test_missing_application_field(key):
    descriptor = seed()
    del descriptor["applications"][0][key]
    assert only_error(descriptor) == FieldError(f"{APP}.{key}", "is required")


@pytest.mark.parametrize("key", ["microservice_name", "microservice_namespace", "virtualization", "code"])
def test_missing_microservice_field(key):
    descriptor = seed()
    del nginx(descriptor)[key]
    assert only_error(descriptor) == FieldError(f"{NGINX}.{key}", "is required")


@pytest.mark.parametrize(
    "key",
    [
        "applicationID",
        "application_desc",
    ],
)
def test_optional_application_fields_may_be_absent(key):
    descriptor = seed()
    del descriptor["applications"][0][key]
    assert validate_descriptor(descriptor) == []


@pytest.mark.parametrize(
    "key",
    [
        "microserviceID",
        "cmd",
        "memory",
        "vcpus",
        "vgpus",
        "vtpus",
        "bandwidth_in",
        "bandwidth_out",
        "storage",
        "state",
        "port",
        "addresses",
        "added_files",
    ],
)
def test_optional_microservice_fields_may_be_absent(key):
    descriptor = seed()
    del nginx(descriptor)[key]
    assert validate_descriptor(descriptor) == []


def test_everything_missing_at_once():
    assert sorted(paths(validate_descriptor({}))) == ["applications", "customerID", "sla_version"]
    descriptor = {"sla_version": "v2.0", "customerID": "Admin", "applications": [{"microservices": [{}]}]}
    assert sorted(paths(validate_descriptor(descriptor))) == sorted(
        [
            f"{APP}.application_name",
            f"{APP}.application_namespace",
            f"{CURL}.microservice_name",
            f"{CURL}.microservice_namespace",
            f"{CURL}.virtualization",
            f"{CURL}.code",
        ]
    )


# --- names -----------------------------------------------------------------------------------

NAME_FIELDS = [
    (lambda d: d["applications"][0], f"{APP}.application_name"),
    (lambda d: d["applications"][0], f"{APP}.application_namespace"),
    (nginx, f"{NGINX}.microservice_name"),
    (nginx, f"{NGINX}.microservice_namespace"),
]
BAD_NAMES = [
    "",
    "a" * 31,
    "my-app",
    "my_app",
    "app name",
    "app.ns",
    "caf\u00e9",
    "x\n",
    "\u0661",
    5,
    None,
    True,
    ["a"],
]


@pytest.mark.parametrize(("owner", "path"), NAME_FIELDS)
@pytest.mark.parametrize("value", BAD_NAMES, ids=repr)
def test_bad_names_are_rejected(owner, path, value):
    descriptor = seed()
    owner(descriptor)[path.rsplit(".", 1)[1]] = value
    error = only_error(descriptor)
    assert error.path == path
    if isinstance(value, str):
        assert "1 to 30 letters or digits" in error.reason
    else:
        assert error.reason.startswith("must be a string")


@pytest.mark.parametrize(("owner", "path"), NAME_FIELDS)
@pytest.mark.parametrize("value", ["a", "A" * 30, "Z9y8X7"])
def test_good_names_are_accepted(owner, path, value):
    descriptor = seed()
    owner(descriptor)[path.rsplit(".", 1)[1]] = value
    # Renaming one service or namespace never creates a duplicate here: the other service is curl.
    assert validate_descriptor(descriptor) == []


# --- ports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9080", [PortMapping(9080, 9080, "tcp")]),
        ("6080:80/tcp", [PortMapping(6080, 80, "tcp")]),
        ("53:5353/udp", [PortMapping(53, 5353, "udp")]),
        ("53/udp", [PortMapping(53, 53, "udp")]),
        (
            "80:8080;443:8443/tcp;53/udp",
            [PortMapping(80, 8080), PortMapping(443, 8443), PortMapping(53, 53, "udp")],
        ),
        (" 1:65535 ; 65535:1/UDP ", [PortMapping(1, 65535), PortMapping(65535, 1, "udp")]),
        ("80/tcp;80/udp", [PortMapping(80, 80, "tcp"), PortMapping(80, 80, "udp")]),
        ("", []),
    ],
)
def test_parse_ports(text, expected):
    assert parse_ports(text) == expected
    descriptor = seed()
    nginx(descriptor)["port"] = text
    assert validate_descriptor(descriptor) == []
    assert parse_descriptor(descriptor).applications[0].microservices[1].ports == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0", "1 to 65535"),
        ("65536", "1 to 65535"),
        ("0:80", "1 to 65535"),
        ("80:0", "1 to 65535"),
        ("80:65536", "1 to 65535"),
        ("a:b", "1 to 65535"),
        ("-1", "1 to 65535"),
        ("+80", "1 to 65535"),
        ("1e3", "1 to 65535"),
        ("8080:", "1 to 65535"),
        (":80", "1 to 65535"),
        ("1:2/icmp", "protocol 'icmp'"),
        ("1:2/", "protocol ''"),
        ("1:2:3", "hostport:containerport"),
        ("80;", "entry 2 is empty"),
        (";80", "entry 1 is empty"),
        ("80;;81", "entry 2 is empty"),
        (";", "entry 1 is empty"),
        ("80:80;80:81", "host port 80/tcp is already mapped"),
        ("53/udp;53:54/udp", "host port 53/udp is already mapped"),
    ],
)
def test_bad_ports_are_rejected(text, fragment):
    descriptor = seed()
    nginx(descriptor)["port"] = text
    errors = validate_descriptor(descriptor)
    assert paths(errors) and set(paths(errors)) == {f"{NGINX}.port"}
    assert any(fragment in error.reason for error in errors), errors
    with pytest.raises(PortError) as raised:
        parse_ports(text)
    assert any(fragment in problem for problem in raised.value.problems)


def test_port_must_be_a_string():
    descriptor = seed()
    nginx(descriptor)["port"] = 9080
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.port"
    assert "must be a string" in error.reason


def test_every_bad_port_entry_is_reported():
    descriptor = seed()
    nginx(descriptor)["port"] = "0;80:80/sctp;;1:2:3"
    errors = validate_descriptor(descriptor)
    assert [error.reason.split(" ")[1] for error in errors] == ["1", "2", "3", "4"]


# --- rr_ip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["", "10.30.0.1", "10.30.255.254", "10.30.12.34"])
def test_good_rr_ip(address):
    descriptor = seed()
    nginx(descriptor)["addresses"] = {"rr_ip": address}
    assert validate_descriptor(descriptor) == []


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("10.31.0.1", "outside 10.30.0.0/16"),
        ("10.29.255.255", "outside 10.30.0.0/16"),
        ("192.168.1.10", "outside 10.30.0.0/16"),
        ("10.30.0.0", "network or broadcast"),
        ("10.30.255.255", "network or broadcast"),
        ("10.30.0.256", "not an IPv4 address"),
        ("not-an-ip", "not an IPv4 address"),
        ("10.30.1", "not an IPv4 address"),
        ("10.30.0.1/32", "not an IPv4 address"),
        ("fd00::1", "not an IPv4 address"),
        (" 10.30.0.1", "not an IPv4 address"),
        (1234, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_bad_rr_ip(address, fragment):
    descriptor = seed()
    nginx(descriptor)["addresses"] = {"rr_ip": address}
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.addresses.rr_ip"
    assert fragment in error.reason


def test_addresses_must_be_an_object():
    descriptor = seed()
    nginx(descriptor)["addresses"] = "10.30.0.1"
    assert only_error(descriptor).path == f"{NGINX}.addresses"


def test_rr_ip_used_twice_in_one_descriptor():
    descriptor = seed()
    curl(descriptor)["addresses"] = {"rr_ip": "10.30.1.1"}
    nginx(descriptor)["addresses"] = {"rr_ip": "10.30.1.1"}
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.addresses.rr_ip"
    assert CURL in error.reason


# --- constraints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ({"type": "direct", "cluster": "edge1"}, Constraint("direct", "edge1", ())),
        ({"type": "direct", "node": "n1"}, Constraint("direct", "", ("n1",))),
        (
            {"type": "direct", "cluster": "c", "node": "n1; n2;n3"},
            Constraint("direct", "c", ("n1", "n2", "n3")),
        ),
        ({"type": "direct", "cluster": "", "node": ""}, Constraint("direct", "", ())),
    ],
)
def test_direct_constraints(constraint, expected):
    descriptor = seed()
    nginx(descriptor)["constraints"] = [constraint]
    assert validate_descriptor(descriptor) == []
    assert parse_descriptor(descriptor).applications[0].microservices[1].constraints == [expected]


@pytest.mark.parametrize("kind", ["latency", "geo"])
def test_documented_but_unimplemented_constraints_are_refused_clearly(kind):
    descriptor = seed()
    nginx(descriptor)["constraints"] = [{"type": kind, "area": "munich", "threshold": 100}]
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.constraints[0].type"
    assert f"'{kind}' constraints are not supported by Grove" in error.reason


@pytest.mark.parametrize(
    ("constraints", "path", "fragment"),
    [
        ([{"type": "nearest"}], ".constraints[0].type", "not a known constraint type"),
        ([{"cluster": "c"}], ".constraints[0].type", "is required"),
        ([{"type": 1}], ".constraints[0].type", "must be a string"),
        (["direct"], ".constraints[0]", "must be an object"),
        ({"type": "direct"}, ".constraints", "must be a list"),
        ([{"type": "direct", "cluster": 7}], ".constraints[0].cluster", "must be a string"),
        ([{"type": "direct", "node": ["n1"]}], ".constraints[0].node", "must be a string"),
        ([{"type": "direct", "node": "n1;;n2"}], ".constraints[0].node", "entry 2 of the node list is empty"),
        ([{"type": "direct", "node": "n1;"}], ".constraints[0].node", "entry 2 of the node list is empty"),
        (
            [{"type": "direct", "cluster": "a"}, {"type": "direct", "cluster": "b"}],
            ".constraints[1]",
            "only one 'direct' constraint",
        ),
    ],
)
def test_bad_constraints(constraints, path, fragment):
    descriptor = seed()
    nginx(descriptor)["constraints"] = constraints
    error = only_error(descriptor)
    assert error.path == NGINX + path
    assert fragment in error.reason


# --- types of the other fields ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["memory", "vgpus", "vtpus", "bandwidth_in", "bandwidth_out", "storage"])
@pytest.mark.parametrize("value", [True, False, -1, 1.5, 100.0, "100", None, [1]], ids=repr)
def test_integer_fields(key, value):
    descriptor = seed()
    nginx(descriptor)[key] = value
    error = only_error(descriptor)
    assert error == FieldError(f"{NGINX}.{key}", error.reason)
    assert "non-negative integer" in error.reason


@pytest.mark.parametrize("value", [True, -0.5, float("nan"), float("inf"), "1", None])
def test_vcpus_must_be_a_non_negative_number(value):
    descriptor = seed()
    nginx(descriptor)["vcpus"] = value
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.vcpus"
    assert "non-negative number" in error.reason


@pytest.mark.parametrize("value", [0, 0.25, 2, 64])
def test_vcpus_accepts_fractions(value):
    descriptor = seed()
    nginx(descriptor)["vcpus"] = value
    assert validate_descriptor(descriptor) == []


@pytest.mark.parametrize("key", ["cmd", "args", "added_files", "environment"])
def test_string_lists(key):
    descriptor = seed()
    nginx(descriptor)[key] = "sh -c true"
    assert only_error(descriptor) == FieldError(f"{NGINX}.{key}", "must be a list of strings, not a string")
    nginx(descriptor)[key] = ["A=ok", 3, None]
    assert paths(validate_descriptor(descriptor)) == [f"{NGINX}.{key}[1]", f"{NGINX}.{key}[2]"]
    nginx(descriptor)[key] = ["A=x\x00y"]
    assert only_error(descriptor) == FieldError(f"{NGINX}.{key}[0]", "must not contain a NUL character")


@pytest.mark.parametrize("entry", ["NOVALUE", "=x", "1X=a", "MY-VAR=1", "A B=1", ""])
def test_environment_entries_must_be_var_equals_value(entry):
    descriptor = seed()
    nginx(descriptor)["environment"] = ["OK=1", entry]
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.environment[1]"
    assert "VAR=value" in error.reason


@pytest.mark.parametrize("key", ["one_shot", "privileged"])
@pytest.mark.parametrize("value", ["yes", 1, 0, None])
def test_booleans(key, value):
    descriptor = seed()
    nginx(descriptor)[key] = value
    assert only_error(descriptor).path == f"{NGINX}.{key}"


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("service", "microserviceID"),
        ("service", "state"),
        ("app", "applicationID"),
        ("app", "application_desc"),
    ],
)
@pytest.mark.parametrize("value", [5, None, ["x"], {}])
def test_optional_strings(where, key, value):
    descriptor = seed()
    owner = nginx(descriptor) if where == "service" else descriptor["applications"][0]
    owner[key] = value
    error = only_error(descriptor)
    assert error.path == f"{NGINX if where == 'service' else APP}.{key}"
    assert error.reason.startswith("must be a string")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("unikernel", "'unikernel' is not supported by Grove"),
        ("vm", "not a known virtualization"),
        ("Container", "not a known virtualization"),
        (1, "must be a string"),
    ],
)
def test_virtualization(value, fragment):
    descriptor = seed()
    nginx(descriptor)["virtualization"] = value
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.virtualization"
    assert fragment in error.reason


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (None, "must be a string"),
        (["nginx"], "must be a string"),
        ("nginx latest", "whitespace"),
        ("nginx\t", "whitespace"),
        ("nginx\x1b[0m", "control characters"),
        ("--rm", "starts with '-'"),
    ],
)
def test_code_is_a_non_empty_image_reference(value, fragment):
    descriptor = seed()
    nginx(descriptor)["code"] = value
    error = only_error(descriptor)
    assert error.path == f"{NGINX}.code"
    assert fragment in error.reason


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("v1.0", "not supported"), ("", "not supported"), ("V2.0", "not supported"), (2.0, "must be a string")],
)
def test_unknown_sla_version(value, fragment):
    descriptor = seed()
    descriptor["sla_version"] = value
    error = only_error(descriptor)
    assert error.path == "sla_version"
    assert fragment in error.reason


@pytest.mark.parametrize("value", [None, 5, "", "   "])
def test_customer_id(value):
    descriptor = seed()
    descriptor["customerID"] = value
    assert only_error(descriptor).path == "customerID"


@pytest.mark.parametrize("data", [None, [], "descriptor", 3, True])
def test_descriptor_must_be_an_object(data):
    error = only_error(data)
    assert error.path == ""
    assert str(error).startswith("descriptor: must be an object")


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d.update(applications={}), "applications", "must be a list"),
        (lambda d: d.update(applications=[]), "applications", "at least one application"),
        (lambda d: d.update(applications=["clientsrvr"]), "applications[0]", "must be an object"),
        (lambda d: d["applications"][0].update(microservices={}), f"{APP}.microservices", "must be a list"),
        (
            lambda d: d["applications"][0]["microservices"].append(7),
            f"{APP}.microservices[2]",
            "must be an object",
        ),
        (lambda d: d.update(args="x"), "args", "must be a list of strings"),
    ],
)
def test_container_types(mutate, path, fragment):
    descriptor = seed()
    mutate(descriptor)
    error = only_error(descriptor)
    assert error.path == path
    assert fragment in error.reason


def test_application_without_microservices_is_valid():
    descriptor = seed()
    descriptor["applications"][0]["microservices"] = []
    assert validate_descriptor(descriptor) == []
    assert parse_descriptor(descriptor).microservices() == []


# --- duplicates ------------------------------------------------------------------------------


def test_duplicate_microservice_in_an_application():
    descriptor = seed()
    nginx(descriptor)["microservice_name"] = "curl"
    error = only_error(descriptor)
    assert error.path == f"{APP}.microservices[1]"
    assert "duplicate microservice curl.test" in error.reason
    assert f"{APP}.microservices[0]" in error.reason


def test_same_service_name_in_another_namespace_is_not_a_duplicate():
    descriptor = seed()
    nginx(descriptor)["microservice_name"] = "curl"
    nginx(descriptor)["microservice_namespace"] = "prod"
    assert validate_descriptor(descriptor) == []


def test_duplicate_application_in_a_descriptor():
    descriptor = seed()
    descriptor["applications"].append(copy.deepcopy(descriptor["applications"][0]))
    error = only_error(descriptor)
    assert error.path == "applications[1]"
    assert "duplicate application clientsrvr.test" in error.reason


def test_same_microservice_in_two_applications_is_fine():
    descriptor = seed()
    other = copy.deepcopy(descriptor["applications"][0])
    other["application_namespace"] = "prod"
    descriptor["applications"].append(other)
    assert validate_descriptor(descriptor) == []
    fqns = [service.fqn for service in parse_descriptor(descriptor).microservices()]
    assert fqns == [
        "clientsrvr.test.curl.test",
        "clientsrvr.test.nginx.test",
        "clientsrvr.prod.curl.test",
        "clientsrvr.prod.nginx.test",
    ]


# --- all errors at once ----------------------------------------------------------------------


def test_all_errors_are_reported_at_once_with_exact_paths():
    descriptor = seed()
    descriptor["sla_version"] = "v3"
    descriptor["applications"][0]["application_namespace"] = "te-st"
    curl(descriptor)["memory"] = -5
    curl(descriptor)["cmd"] = ["sh", 1]
    curl(descriptor)["port"] = "0:80;9080/icmp"
    nginx(descriptor)["code"] = ""
    nginx(descriptor)["addresses"] = {"rr_ip": "10.40.0.1"}
    nginx(descriptor)["constraints"] = [{"type": "geo"}]
    nginx(descriptor)["vcpus"] = "2"
    errors = validate_descriptor(descriptor)
    assert paths(errors) == [
        "sla_version",
        f"{APP}.application_namespace",
        f"{CURL}.memory",
        f"{CURL}.cmd[1]",
        f"{CURL}.port",
        f"{CURL}.port",
        f"{NGINX}.code",
        f"{NGINX}.vcpus",
        f"{NGINX}.addresses.rr_ip",
        f"{NGINX}.constraints[0].type",
    ]
    with pytest.raises(DescriptorError) as raised:
        parse_descriptor(descriptor)
    assert raised.value.errors == errors
    assert str(raised.value).splitlines() == [str(error) for error in errors]
    assert str(raised.value).splitlines()[0] == "sla_version: 'v3' is not supported: use one of v2.0, v0.2"


# --- values are data -------------------------------------------------------------------------


def test_hostile_strings_are_kept_verbatim():
    descriptor = seed()
    curl(descriptor)["cmd"] = ["sh", "-c", HOSTILE, "$(id)", "`id`; rm -rf /"]
    curl(descriptor)["args"] = [HOSTILE]
    curl(descriptor)["environment"] = [f"X={HOSTILE}", "Y=$(id)"]
    curl(descriptor)["code"] = "registry.local/{{x}}:latest"
    descriptor["applications"][0]["application_desc"] = HOSTILE
    assert validate_descriptor(descriptor) == []
    parsed = parse_descriptor(descriptor)
    service = parsed.applications[0].microservices[0]
    assert service.cmd == ["sh", "-c", HOSTILE, "$(id)", "`id`; rm -rf /"]
    assert service.environment == [f"X={HOSTILE}", "Y=$(id)"]
    spec = service.instance_spec()
    assert spec["cmd"] == ["sh", "-c", HOSTILE, "$(id)", "`id`; rm -rf /"]
    assert spec["args"] == [HOSTILE]
    assert service.env_entries() == [f"X={HOSTILE}", "Y=$(id)"]
    assert spec["image"] == "registry.local/{{x}}:latest"
    assert parsed.applications[0].application_desc == HOSTILE


def test_parsing_does_not_alias_the_input():
    descriptor = seed()
    parsed = parse_descriptor(descriptor)
    curl(descriptor)["cmd"].append("mutated")
    assert parsed.applications[0].microservices[0].cmd == ["sh", "-c", "tail -f /dev/null"]


# --- helpers ---------------------------------------------------------------------------------


def test_names():
    assert service_fqn("clientsrvr", "test", "nginx", "test") == "clientsrvr.test.nginx.test"
    assert instance_id("clientsrvr.test.nginx.test", 3) == "clientsrvr.test.nginx.test.instance.3"


def test_instance_spec_and_schedule_request():
    descriptor = seed()
    nginx(descriptor)["environment"] = ["A=1", "A=2", "SECRET=hunter2"]
    nginx(descriptor)["port"] = "6080:80/tcp;53/udp"
    nginx(descriptor)["constraints"] = [{"type": "direct", "cluster": "edge1", "node": "w1;w2"}]
    service = parse_descriptor(descriptor).applications[0].microservices[1]
    assert service.instance_spec() == {
        "image": "docker.io/library/nginx:latest",
        "cmd": [],
        "args": [],
        "memory": 100,
        "vcpus": 1,
        "vgpus": 0,
        "storage": 0,
        "ports": "6080:80/tcp;53:53/udp",
        "bandwidth_in": 0,
        "bandwidth_out": 0,
        "privileged": False,
        "one_shot": False,
        "labels": {
            "grove.service": "clientsrvr.test.nginx.test",
            "grove.application": "clientsrvr.test",
            "grove.microservice": "nginx.test",
        },
    }
    # The environment travels on its own (masked in the instance module), never in the spec.
    assert "hunter2" not in json.dumps(service.instance_spec())
    assert service.env_entries() == ["A=2", "SECRET=hunter2"]
    assert service.to_schedule_request([0, 1]) == {
        "service": "clientsrvr.test.nginx.test",
        "requirements": {"vcpus": 1, "memory": 100, "vgpus": 0, "storage": 0, "virtualization": "container"},
        "instance_numbers": [0, 1],
        "constraints": [{"type": "direct", "cluster": "edge1", "node": "w1;w2"}],
        "host_ports": ["6080/tcp", "53/udp"],
    }


def test_the_instance_spec_has_exactly_the_instance_modules_spec_options():
    # One object passed whole: a key the descriptor adds that the module does not know (or the
    # other way round) would be refused or silently dropped.
    service = parse_descriptor(seed()).microservices()[1]
    assert set(service.instance_spec()) == set(SPEC_OPTIONS)


def test_environment_errors_name_the_variable_but_never_its_value():
    descriptor = seed()
    curl(descriptor)["environment"] = ["PASSWORD=hunter2\nnext", "1BAD=hunter3", "NOEQUALS"]
    errors = validate_descriptor(descriptor)
    assert paths(errors) == [f"{CURL}.environment[0]", f"{CURL}.environment[1]", f"{CURL}.environment[2]"]
    assert "line break" in errors[0].reason and "'PASSWORD'" in errors[0].reason
    assert "hunter" not in " ".join(error.reason for error in errors)


def test_privileged_services_are_named_for_the_caller_to_refuse():
    descriptor = seed()
    nginx(descriptor)["privileged"] = True
    errors = privileged_errors(parse_descriptor(descriptor))
    assert [error.path for error in errors] == [f"{NGINX}.privileged"]
    assert privileged_errors(parse_descriptor(seed())) == []


def test_fields_grove_does_not_act_on_are_named():
    descriptor = seed()
    nginx(descriptor).update({"vtpus": 1, "added_files": ["a.conf"], "addresses": {"rr_ip": "10.30.0.9"}})
    notes = unhonoured_fields(parse_descriptor(descriptor))
    assert [note.path for note in notes] == [
        f"{NGINX}.addresses.rr_ip",
        f"{NGINX}.added_files",
        f"{NGINX}.vtpus",
    ]
    assert unhonoured_fields(parse_descriptor(seed())) == []


def test_defaults_for_a_minimal_microservice():
    descriptor = {
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [
            {
                "application_name": "a",
                "application_namespace": "b",
                "microservices": [
                    {
                        "microservice_name": "c",
                        "microservice_namespace": "d",
                        "virtualization": "container",
                        "code": "img",
                    }
                ],
            }
        ],
    }
    service = parse_descriptor(descriptor).microservices()[0]
    assert service.requirements() == {
        "vcpus": 0,
        "memory": 0,
        "vgpus": 0,
        "storage": 0,
        "virtualization": "container",
    }
    assert (service.cmd, service.args, service.ports, service.constraints) == ([], [], [], [])
    assert service.instance_spec()["ports"] == ""
