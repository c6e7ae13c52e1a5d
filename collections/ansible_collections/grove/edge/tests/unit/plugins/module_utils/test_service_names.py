"""Hosts files that name the services of an instance's application, rewritten in place."""

import os
import threading

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _service_names as names
from ansible_collections.grove.edge.plugins.module_utils._descriptor import instance_id as instance_id_of
from ansible_collections.grove.edge.plugins.module_utils._service_address import ServiceAddressError

SERVICES = [
    {"service": "clientsrvr.test.nginx.test", "rr_ip": "10.30.1.2"},
    {"service": "clientsrvr.test.curl.test", "rr_ip": "10.30.0.9"},
    {"service": "other.prod.nginx.prod", "rr_ip": "10.30.7.7"},
    {"service": "clientsrvr.test.pending.test", "rr_ip": ""},
]


def test_each_application_sees_its_own_services_by_full_and_short_name():
    entries = names.application_entries(SERVICES)
    assert entries == {
        "clientsrvr.test": [
            ("10.30.0.9", ["curl.test.clientsrvr.test", "curl"]),
            ("10.30.1.2", ["nginx.test.clientsrvr.test", "nginx"]),
        ],
        "other.prod": [("10.30.7.7", ["nginx.prod.other.prod", "nginx"])],
    }


def test_a_short_name_two_services_share_is_left_out():
    entries = names.application_entries(
        [
            {"service": "app.ns.nginx.test", "rr_ip": "10.30.0.1"},
            {"service": "app.ns.NGINX.prod", "rr_ip": "10.30.0.2"},
            {"service": "app.ns.localhost.x", "rr_ip": "10.30.0.3"},
        ]
    )["app.ns"]
    assert entries == [
        ("10.30.0.1", ["nginx.test.app.ns"]),
        ("10.30.0.2", ["NGINX.prod.app.ns"]),
        ("10.30.0.3", ["localhost.x.app.ns"]),
    ]


def test_the_file_keeps_the_localhost_lines():
    text = names.render_hosts("clientsrvr.test", names.application_entries(SERVICES)["clientsrvr.test"])
    assert text.splitlines() == [
        "# Managed by Grove: the services of application clientsrvr.test (grove.edge.service_names).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "10.30.0.9\tcurl.test.clientsrvr.test curl",
        "10.30.1.2\tnginx.test.clientsrvr.test nginx",
    ]


@pytest.mark.parametrize(
    "service",
    [
        {"service": "a.b.c.d\n10.0.0.1 evil", "rr_ip": "10.30.0.1"},
        {"service": "a.b.c.d", "rr_ip": "10.30.0.1\n1.2.3.4 evil"},
        {"service": "{{ lookup('pipe','id') }}", "rr_ip": "10.30.0.1"},
        {"service": "a.b.c.d", "rr_ip": "{{ lookup('pipe','id') }}"},
        "a.b.c.d",
    ],
)
def test_hostile_input_never_reaches_a_hosts_file(service):
    with pytest.raises((names.ServiceNamesError, ServiceAddressError)):
        names.application_entries([service])


@pytest.mark.parametrize("instance_id", ["../etc/passwd", "a/b", "..", ".", "", "-x", "a" * 77, "a\nb", None])
def test_instance_ids_cannot_leave_the_hosts_directory(instance_id):
    with pytest.raises(names.ServiceNamesError):
        names.hosts_path("/run/grove/hosts", instance_id)


def test_long_hashed_instance_ids_are_accepted():
    instance_id = instance_id_of(".".join(["a" * 30] * 4), 3)
    assert len(instance_id) == 76
    assert names.hosts_path("/d", instance_id) == "/d/" + instance_id


def test_rewriting_keeps_the_inode_and_cuts_the_old_tail(tmp_path):
    path = tmp_path / "hosts" / "x.instance.0"
    names.write_in_place(str(path), "a long first version\n" * 10)
    inode = path.stat().st_ino
    names.write_in_place(str(path), "short\n")
    assert path.stat().st_ino == inode
    assert path.read_text() == "short\n"
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_reader_holding_the_file_open_sees_the_new_content(tmp_path):
    path = tmp_path / "hosts"
    names.write_in_place(str(path), "old\n")
    with open(path) as reader:  # like a bind mount, it pins the inode
        names.write_in_place(str(path), "new content\n")
        reader.seek(0)
        assert reader.read() == "new content\n"


def test_a_symlink_is_never_followed(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        names.write_in_place(str(link), "x\n")
    assert target.read_text() == "keep\n"


def test_concurrent_readers_never_see_an_empty_file(tmp_path):
    path = tmp_path / "hosts"
    texts = ["127.0.0.1\tlocalhost\n" + f"10.30.0.{i}\tsvc\n" * (i % 7 + 1) for i in range(200)]
    names.write_in_place(str(path), texts[0])
    seen_empty = []
    done = threading.Event()

    def read_loop():
        fd = os.open(path, os.O_RDONLY)
        try:
            while not done.is_set():
                if os.pread(fd, 4096, 0) == b"":
                    seen_empty.append(True)
        finally:
            os.close(fd)

    reader = threading.Thread(target=read_loop)
    reader.start()
    for text in texts:
        names.write_in_place(str(path), text)
    done.set()
    reader.join()
    assert not seen_empty
