"""Desired spec, labels, ids and status mapping of grove.edge.instance (module_utils/_instance.py)."""

import json
import re

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _instance as spec_utils
from ansible_collections.grove.edge.plugins.module_utils._ports import PortMapping, format_ports
from hypothesis import given
from hypothesis import strategies as st

# containerd's identifier rules (containerd/identifiers): what `ctr run` accepts as a container id.
CONTAINERD_ID = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
names = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=30)


NETWORK = {"subnet": "10.18.0.0/24", "bridge": "grove0", "routes": ["0.0.0.0/0"]}
DIGEST = spec_utils.env_digest([], "00")


def params(**overrides):
    base = {
        "image": "docker.io/library/nginx:latest",
        "cmd": [],
        "args": [],
        "memory": 0,
        "vcpus": 0.0,
        "vgpus": 0,
        "storage": 0,
        "ports": "",
        "bandwidth_in": 0,
        "bandwidth_out": 0,
        "privileged": False,
        "one_shot": False,
        "labels": {},
    }
    base.update(overrides)
    return base


def desired(env=(), network=None, **overrides):
    return spec_utils.desired_spec(params(**overrides), list(env), network or NETWORK)


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
    base = desired()
    assert spec_utils.spec_hash(base) == spec_utils.spec_hash(desired())
    variants = [
        desired(image="nginx:2"),
        desired(cmd=["sh"]),
        desired(args=["x"]),
        desired(env=["A=1"]),
        desired(memory=100),
        desired(vcpus=0.5),
        desired(vgpus=1),
        desired(storage=10),
        desired(bandwidth_in=10),
        desired(bandwidth_out=10),
        desired(privileged=True),
        desired(one_shot=True),
        desired(labels={"team": "edge"}),
        desired(ports="6080:80"),
        desired(network=dict(NETWORK, subnet="10.18.1.0/24")),
        desired(network=dict(NETWORK, bridge="grove1")),
        desired(network=dict(NETWORK, routes=["10.0.0.0/8"])),
    ]
    hashes = {spec_utils.spec_hash(variant) for variant in variants}
    assert spec_utils.spec_hash(base) not in hashes
    assert len(hashes) == len(variants)


def test_an_environment_value_changes_the_hash_through_its_digest_only():
    one, other = desired(env=["PASSWORD=hunter2"]), desired(env=["PASSWORD=hunter3"])
    assert one == other  # the spec shows the names, masked: it goes into labels and diffs
    assert one["env"] == ["PASSWORD=********"]
    salt = spec_utils.new_salt()
    first = spec_utils.env_digest(["PASSWORD=hunter2"], salt)
    assert first == spec_utils.env_digest(["PASSWORD=hunter2"], salt)
    assert first != spec_utils.env_digest(["PASSWORD=hunter3"], salt)
    assert spec_utils.spec_hash(one, first) != spec_utils.spec_hash(
        other, spec_utils.env_digest(["PASSWORD=hunter3"], salt)
    )
    # A fresh salt per container: the same password gives unrelated digests on two containers.
    assert (
        first.split(":")[1]
        != spec_utils.env_digest(["PASSWORD=hunter2"], spec_utils.new_salt()).split(":")[1]
    )
    assert "hunter2" not in first


def test_no_label_and_no_option_carries_an_environment_value():
    spec = desired(env=["PASSWORD=hunter2"])
    digest = spec_utils.env_digest(["PASSWORD=hunter2"], spec_utils.new_salt())
    labels = spec_utils.container_labels("app.ns.web.ns", 1, spec, digest)
    assert labels["grove.env-digest"] == digest
    assert spec_utils.recorded_salt({"labels": labels}) == digest.split(":", maxsplit=1)[0]
    options = spec_utils.run_options(spec, labels, "/var/run/netns/x", "/run/grove/env/x.env")
    assert options[options.index("--env-file") + 1] == "/run/grove/env/x.env"
    assert "--env" not in options
    assert "hunter2" not in json.dumps([labels, options])


def test_an_int_and_a_float_vcpus_give_the_same_spec():
    # Ansible may hand over 1 or 1.0 depending on how the value was templated.
    assert desired(vcpus=1) == desired(vcpus=1.0)


@pytest.mark.parametrize("env", [["NOVALUE"], ["=x"], ["A=b\nC=d"], ["1A=x"]])
def test_environment_entries_follow_the_descriptors_rule(env):
    with pytest.raises(spec_utils.SpecError, match="env entry"):
        spec_utils.environment(env)


def test_a_later_environment_entry_wins():
    assert spec_utils.environment(["A=1", "B=2", "A=3"]) == ["A=3", "B=2"]


def test_negative_resources_and_bad_ports_are_refused():
    with pytest.raises(spec_utils.SpecError):
        desired(memory=-1)
    with pytest.raises(spec_utils.SpecError, match="ports"):
        desired(ports="70000:80")


def test_labels_record_resources_ports_and_the_spec():
    spec = desired(memory=100, vcpus=1.5, vgpus=1, storage=20, ports="6080:80;53/udp")
    labels = spec_utils.container_labels("app.ns.web.ns", 2, spec, DIGEST)
    assert labels["grove.service"] == "app.ns.web.ns"
    assert labels["grove.instance"] == "2"
    assert labels["grove.ports"] == "6080:80/tcp;53:53/udp"
    assert labels["grove.resources.vcpus"] == "1.5"
    assert labels["grove.resources.memory"] == "100"
    assert labels["grove.resources.vgpus"] == "1"
    assert labels["grove.resources.storage"] == "20"
    assert labels["grove.spec-hash"] == spec_utils.spec_hash(spec, DIGEST)
    assert json.loads(labels["grove.spec"]) == spec
    assert "grove.one_shot" not in labels


def test_user_labels_may_repeat_but_not_contradict_managed_ones():
    spec = desired(labels={"grove.service": "app.ns.web.ns", "team": "edge"})
    labels = spec_utils.container_labels("app.ns.web.ns", 1, spec, DIGEST)
    assert labels["team"] == "edge"
    with pytest.raises(spec_utils.SpecError, match=r"grove\.instance"):
        spec_utils.container_labels("app.ns.web.ns", 1, desired(labels={"grove.instance": "7"}), DIGEST)
    with pytest.raises(spec_utils.SpecError, match=r"grove\.address"):
        spec_utils.container_labels("app.ns.web.ns", 1, desired(labels={"grove.address": "1.2.3.4"}), DIGEST)
    with pytest.raises(spec_utils.SpecError, match=r"grove\.env-digest"):
        spec_utils.container_labels("app.ns.web.ns", 1, desired(labels={"grove.env-digest": "x"}), DIGEST)


def test_a_huge_command_line_leaves_the_spec_label_out_but_keeps_the_hash():
    spec = desired(args=["x" * 5000])
    labels = spec_utils.container_labels("app.ns.web.ns", 1, spec, DIGEST)
    assert "grove.spec" not in labels
    assert labels["grove.spec-hash"] == spec_utils.spec_hash(spec, DIGEST)


def test_run_options_carry_limits_and_labels_as_separate_arguments():
    spec = desired(memory=100, vcpus=0.5, privileged=True)
    options = spec_utils.run_options(spec, {"grove.service": "a.b.c.d"}, "/var/run/netns/x", None)
    assert options[:2] == ["--with-ns", "network:/var/run/netns/x"]
    assert options[options.index("--memory-limit") + 1] == str(100 * 1024 * 1024)
    assert options[options.index("--cpus") + 1] == "0.5"
    assert "--privileged" in options
    assert options[options.index("--label") + 1] == "grove.service=a.b.c.d"
    assert "--env-file" not in options


def test_the_hosts_file_is_bind_mounted_read_only():
    options = spec_utils.run_options(desired(), {}, "/n", None, "/run/grove/hosts/a.b.c.d.instance.0")
    mount = options[options.index("--mount") + 1]
    assert mount == "type=bind,src=/run/grove/hosts/a.b.c.d.instance.0,dst=/etc/hosts,options=rbind:ro"


def test_no_limits_means_no_limit_options():
    options = spec_utils.run_options(desired(), {}, "/n", None)
    assert "--memory-limit" not in options
    assert "--cpus" not in options
    assert "--privileged" not in options


ports = st.lists(
    st.builds(PortMapping, st.integers(1, 65535), st.integers(1, 65535), st.sampled_from(["tcp", "udp"])),
    max_size=5,
)


@given(ports)
def test_the_ports_label_reads_back_what_was_written(mappings):
    unique = list({mapping.host_key: mapping for mapping in mappings}.values())
    labels = {"grove.ports": format_ports(unique)}
    assert spec_utils.recorded_ports({"labels": labels}) == unique


def container(labels=None):
    return {"id": "a.b.c.d.instance.1", "labels": labels or {}, "image": "docker.io/library/x:1"}


@pytest.mark.parametrize(
    ("labels", "task", "expected"),
    [
        ({}, None, "CREATING"),
        ({"grove.state": "stopped"}, None, "CREATED"),
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
    spec = desired(memory=100, vcpus=1.0, ports="6080:80/tcp")
    labels = dict(
        spec_utils.container_labels("app.ns.web.ns", 4, spec, DIGEST), **{"grove.address": "10.18.0.9"}
    )
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
