"""Desired spec, labels, ids and status mapping of grove.edge.instance (module_utils/_instance.py)."""

import json
import re

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _instance as spec_utils
from ansible_collections.grove.edge.plugins.module_utils._descriptor import PortMapping, parse_ports
from hypothesis import given
from hypothesis import strategies as st

# containerd's identifier rules (containerd/identifiers): what `ctr run` accepts as a container id.
CONTAINERD_ID = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
names = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=30)


def params(**overrides):
    base = {
        "image": "docker.io/library/nginx:latest",
        "cmd": [],
        "args": [],
        "env": [],
        "memory": 0,
        "vcpus": 0.0,
        "vgpus": 0,
        "storage": 0,
        "bandwidth_in": 0,
        "bandwidth_out": 0,
        "privileged": False,
        "one_shot": False,
        "labels": {},
        "subnet": "10.18.0.0/24",
        "bridge": "grove0",
        "routes": ["0.0.0.0/0"],
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("ref", "normalized"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("curlimages/curl", "docker.io/curlimages/curl:latest"),
        ("docker.io/nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
        ("docker.io/library/nginx:latest", "docker.io/library/nginx:latest"),
        ("10.99.0.1:5000/app", "10.99.0.1:5000/app:latest"),
        ("localhost/app:2", "localhost/app:2"),
        ("registry.example/team/app@sha256:" + "a" * 64, "registry.example/team/app@sha256:" + "a" * 64),
    ],
)
def test_image_references_are_normalised_like_docker(ref, normalized):
    assert spec_utils.normalize_image(ref) == normalized


@pytest.mark.parametrize("ref", ["", "  ", "-rm", "nginx latest", "a\tb"])
def test_image_references_that_could_be_options_or_words_are_refused(ref):
    with pytest.raises(spec_utils.SpecError):
        spec_utils.normalize_image(ref)


def test_short_ids_follow_oakestras_naming():
    assert spec_utils.instance_id("clientsrvr.test.nginx.test", 3) == "clientsrvr.test.nginx.test.instance.3"


@given(names, names, names, names, st.integers(0, 10**6))
def test_every_id_is_one_containerd_accepts_and_keeps_the_instance_number(a, b, c, d, number):
    service = f"{a}.{b}.{c}.{d}"
    container_id = spec_utils.instance_id(service, number)
    assert len(container_id) <= spec_utils.MAX_ID_LENGTH
    assert CONTAINERD_ID.fullmatch(container_id)
    assert container_id.endswith(f".instance.{number}")
    assert container_id != spec_utils.instance_id(service, number + 1)


def test_long_names_get_distinct_ids():
    one = "a" * 30 + "." + "b" * 30 + "." + "c" * 30 + ".x"
    other = "a" * 30 + "." + "b" * 30 + "." + "c" * 30 + ".y"
    assert spec_utils.instance_id(one, 1) != spec_utils.instance_id(other, 1)


@pytest.mark.parametrize("service", ["a.b.c", "a.b.c.d.e", "a.b-c.d.e", "a..c.d", "a.b.c." + "d" * 31])
def test_services_must_be_four_oakestra_names(service):
    with pytest.raises(spec_utils.SpecError):
        spec_utils.check_service(service)


@pytest.mark.parametrize(
    ("cmd", "args", "expected"),
    [
        ([], [], None),
        (["sh", "-c"], ["echo hi"], ["sh", "-c", "echo hi"]),
        (["tail", "-f", "/dev/null"], [], ["tail", "-f", "/dev/null"]),
        ([], ["-g", "daemon off;"], ["-g", "daemon off;"]),
    ],
)
def test_process_args(cmd, args, expected):
    assert spec_utils.process_args(cmd, args) == expected


def test_spec_hash_is_stable_and_follows_every_spec_field():
    base = spec_utils.desired_spec(params(), [])
    assert spec_utils.spec_hash(base) == spec_utils.spec_hash(spec_utils.desired_spec(params(), []))
    variants = [
        params(image="nginx:2"),
        params(cmd=["sh"]),
        params(args=["x"]),
        params(env=["A=1"]),
        params(memory=100),
        params(vcpus=0.5),
        params(vgpus=1),
        params(storage=10),
        params(bandwidth_in=10),
        params(bandwidth_out=10),
        params(privileged=True),
        params(one_shot=True),
        params(labels={"team": "edge"}),
        params(subnet="10.18.1.0/24"),
        params(bridge="grove1"),
        params(routes=["10.0.0.0/8"]),
    ]
    hashes = {spec_utils.spec_hash(spec_utils.desired_spec(variant, [])) for variant in variants}
    assert spec_utils.spec_hash(base) not in hashes
    assert len(hashes) == len(variants)
    with_ports = spec_utils.desired_spec(params(), parse_ports("6080:80"))
    assert spec_utils.spec_hash(with_ports) != spec_utils.spec_hash(base)


def test_an_int_and_a_float_vcpus_give_the_same_spec():
    # Ansible may hand over 1 or 1.0 depending on how the value was templated.
    assert spec_utils.desired_spec(params(vcpus=1), []) == spec_utils.desired_spec(params(vcpus=1.0), [])


@pytest.mark.parametrize("env", [["NOVALUE"], ["=x"]])
def test_environment_entries_need_a_name_and_an_equals_sign(env):
    with pytest.raises(spec_utils.SpecError):
        spec_utils.desired_spec(params(env=env), [])


def test_negative_resources_are_refused():
    with pytest.raises(spec_utils.SpecError):
        spec_utils.desired_spec(params(memory=-1), [])


def test_labels_record_resources_ports_and_the_spec():
    spec = spec_utils.desired_spec(
        params(memory=100, vcpus=1.5, vgpus=1, storage=20), parse_ports("6080:80;53/udp")
    )
    labels = spec_utils.container_labels("app.ns.web.ns", 2, spec)
    assert labels["grove.service"] == "app.ns.web.ns"
    assert labels["grove.instance"] == "2"
    assert labels["grove.ports"] == "6080:80/tcp;53:53/udp"
    assert labels["grove.resources.vcpus"] == "1.5"
    assert labels["grove.resources.memory"] == "100"
    assert labels["grove.resources.vgpus"] == "1"
    assert labels["grove.resources.storage"] == "20"
    assert labels["grove.spec-hash"] == spec_utils.spec_hash(spec)
    assert json.loads(labels["grove.spec"]) == spec
    assert "grove.one_shot" not in labels


def test_user_labels_may_repeat_but_not_contradict_managed_ones():
    spec = spec_utils.desired_spec(params(labels={"grove.service": "app.ns.web.ns", "team": "edge"}), [])
    labels = spec_utils.container_labels("app.ns.web.ns", 1, spec)
    assert labels["team"] == "edge"
    clash = spec_utils.desired_spec(params(labels={"grove.instance": "7"}), [])
    with pytest.raises(spec_utils.SpecError, match=r"grove\.instance"):
        spec_utils.container_labels("app.ns.web.ns", 1, clash)
    with pytest.raises(spec_utils.SpecError, match=r"grove\.address"):
        spec_utils.container_labels(
            "app.ns.web.ns", 1, spec_utils.desired_spec(params(labels={"grove.address": "1.2.3.4"}), [])
        )


def test_a_huge_environment_leaves_the_spec_label_out_but_keeps_the_hash():
    spec = spec_utils.desired_spec(params(env=["BIG=" + "x" * 5000]), [])
    labels = spec_utils.container_labels("app.ns.web.ns", 1, spec)
    assert "grove.spec" not in labels
    assert labels["grove.spec-hash"] == spec_utils.spec_hash(spec)


def test_run_options_carry_limits_labels_and_environment_as_separate_arguments():
    spec = spec_utils.desired_spec(
        params(memory=100, vcpus=0.5, privileged=True, env=["GREETING=hi $HOME", "B=x=y"]), []
    )
    options = spec_utils.run_options(spec, {"grove.service": "a.b.c.d"}, "/var/run/netns/x")
    assert options[:2] == ["--with-ns", "network:/var/run/netns/x"]
    assert options[options.index("--memory-limit") + 1] == str(100 * 1024 * 1024)
    assert options[options.index("--cpus") + 1] == "0.5"
    assert "--privileged" in options
    assert ["--env", "GREETING=hi $HOME"] == options[options.index("GREETING=hi $HOME") - 1 :][:2]
    assert "B=x=y" in options
    assert options[options.index("--label") + 1] == "grove.service=a.b.c.d"


def test_no_limits_means_no_limit_options():
    options = spec_utils.run_options(spec_utils.desired_spec(params(), []), {}, "/n")
    assert "--memory-limit" not in options
    assert "--cpus" not in options
    assert "--privileged" not in options


ports = st.lists(
    st.builds(PortMapping, st.integers(1, 65535), st.integers(1, 65535), st.sampled_from(["tcp", "udp"])),
    max_size=5,
)


@given(ports)
def test_the_ports_label_reads_back_what_was_written(mappings):
    text = spec_utils.ports_string(mappings)
    back = spec_utils.parse_ports_label(text)
    assert [(p["host_port"], p["container_port"], p["protocol"]) for p in back] == [
        (m.host_port, m.container_port, m.protocol) for m in mappings
    ]


def container(labels=None):
    return {"id": "a.b.c.d.instance.1", "labels": labels or {}, "image": "docker.io/library/x:1"}


@pytest.mark.parametrize(
    ("labels", "task", "expected"),
    [
        ({}, None, "CREATING"),
        ({"grove.state": "stopped"}, None, "STOPPED"),
        ({}, {"status": "CREATED", "exit_status": 0}, "CREATING"),
        ({}, {"status": "RUNNING", "exit_status": 0}, "RUNNING"),
        ({}, {"status": "PAUSED", "exit_status": 0}, "RUNNING"),
        ({}, {"status": "STOPPED", "exit_status": 0}, "DEAD"),
        ({}, {"status": "STOPPED", "exit_status": 137}, "DEAD"),
        ({"grove.one_shot": "true"}, {"status": "STOPPED", "exit_status": 0}, "COMPLETED"),
        ({"grove.one_shot": "true"}, {"status": "STOPPED", "exit_status": 1}, "DEAD"),
        ({}, {"status": "UNKNOWN", "exit_status": 0}, "FAILED"),
    ],
)
def test_status_names_follow_oakestra(labels, task, expected):
    assert spec_utils.status(container(labels), task) == expected


def test_no_container_is_undeployed():
    assert spec_utils.status(None, None) == "UNDEPLOYED"


def test_facts_read_everything_back_from_labels_and_task():
    spec = spec_utils.desired_spec(params(memory=100, vcpus=1.0), parse_ports("6080:80/tcp"))
    labels = dict(spec_utils.container_labels("app.ns.web.ns", 4, spec), **{"grove.address": "10.18.0.9"})
    running = spec_utils.facts(container(labels), {"status": "RUNNING", "pid": 42, "exit_status": 0})
    assert running["service"] == "app.ns.web.ns"
    assert running["instance_number"] == 4
    assert running["status"] == "RUNNING"
    assert running["pid"] == 42
    assert running["exit_status"] is None
    assert running["address"] == "10.18.0.9"
    assert running["host_ports"] == ["6080/tcp"]
    assert running["resources"] == {"vcpus": 1.0, "memory": 100, "vgpus": 0, "storage": 0}
    dead = spec_utils.facts(container(labels), {"status": "STOPPED", "pid": 42, "exit_status": 3})
    assert dead["status"] == "DEAD"
    assert dead["exit_status"] == 3
    assert dead["pid"] is None
