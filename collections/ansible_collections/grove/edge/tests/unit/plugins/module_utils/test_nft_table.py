"""Whole nftables tables: normalising listings, atomic replacement, and nft's own view of the rendering.

The tests that load tables run them in a network namespace of their own (`unshare --net`, only a
loopback device), so nothing on the machine sees the rules.
"""

import os
import shutil
import subprocess

import pytest
from ansible_collections.grove.edge.plugins.module_utils import _nft
from ansible_collections.grove.edge.plugins.module_utils import _overlay as ov
from ansible_collections.grove.edge.plugins.module_utils import _service_address as sa

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None,
    reason="needs root, nft and unshare",
)


def in_private_netns(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True, check=False, timeout=60
    )


def test_normalize_ignores_layout_handles_and_symbolic_priorities():
    listing = (
        "table ip t {\n\tchain c {\n\t\ttype nat hook postrouting priority srcnat - 10; policy accept;"
        " # handle 2\n\n\t\tip daddr 10.30.0.1 accept # handle 3\n\t}\n}\n"
    )
    assert _nft.normalize(listing) == [
        "table ip t {",
        "chain c {",
        "type nat hook postrouting priority 90; policy accept;",
        "ip daddr 10.30.0.1 accept",
        "}",
        "}",
    ]
    assert _nft.same_table(listing.replace("srcnat - 10", "90"), listing)
    assert not _nft.same_table(None, listing)
    assert not _nft.same_table(listing.replace("accept #", "drop #"), listing)


def test_the_replacement_is_one_transaction_that_creates_deletes_and_defines():
    script = _nft.replace_script("ip", "grove_services", "table ip grove_services {\n}\n")
    assert script.splitlines()[:3] == [
        "table ip grove_services",
        "delete table ip grove_services",
        "table ip grove_services {",
    ]
    assert _nft.delete_script("ip", "t") == "table ip t\ndelete table ip t\n"


@pytest.mark.parametrize(
    "family, name", [("ip", "bad name"), ("ip", "x;flush ruleset"), ("ipx", "t"), ("ip", "")]
)
def test_table_names_and_families_are_checked(family, name):
    with pytest.raises(ValueError):
        _nft.check_table(family, name)


class FakeRun:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, argv, data=None):
        self.calls.append((argv, data))
        return self.answers.pop(0)


def test_a_missing_table_reads_as_none_and_other_errors_raise():
    assert (
        _nft.Nft(FakeRun([(1, "", "Error: No such file or directory\nlist table ip x")])).list_table(
            "ip", "x"
        )
        is None
    )
    with pytest.raises(_nft.NftError, match="Operation not permitted"):
        _nft.Nft(FakeRun([(1, "", "Error: Operation not permitted")])).list_table("ip", "x")


def test_apply_feeds_the_script_on_stdin():
    run = FakeRun([(0, "", "")])
    _nft.Nft(run, "/usr/sbin/nft").delete_table("ip", "t")
    assert run.calls == [(["/usr/sbin/nft", "-f", "-"], "table ip t\ndelete table ip t\n")]


SERVICES = sa.parse_services(
    [
        {
            "service": "clientsrvr.test.nginx.test",
            "rr_ip": "10.30.1.2",
            "ports": ["80/tcp"],
            "backends": ["10.18.1.2", "10.18.1.3", "10.18.2.2"],
        },
        {"service": "clientsrvr.test.curl.test", "rr_ip": "10.30.0.9", "ports": [], "backends": []},
        {
            "service": "a.b.c.d",
            "rr_ip": "10.30.5.5",
            "ports": ["53/udp", "53", "8080"],
            "backends": ["10.18.1.9"],
        },
        {"service": "a.b.e.d", "rr_ip": "10.30.5.6", "ports": [], "backends": ["10.18.3.3", "10.18.3.4"]},
    ]
)
OVERLAY = ov.check_config({"subnet": "10.18.1.0/24", "local": "10.99.1.11"})


@needs_netns
@pytest.mark.parametrize(
    "name, rendered",
    [
        ("grove_services", sa.render_table(SERVICES)),
        ("grove_services", sa.render_table([])),
        ("grove_overlay", ov.render_table(OVERLAY)),
        (
            "grove_overlay",
            ov.render_table(
                ov.check_config({"subnet": "10.18.1.0/24", "local": "10.99.1.11", "mode": "routes"})
            ),
        ),
    ],
)
def test_nft_lists_a_loaded_table_exactly_as_rendered(name, rendered):
    script = _nft.replace_script("ip", name, rendered)
    proc = in_private_netns(f"nft -f - <<'EOF'\n{script}EOF\nnft list table ip {name}")
    assert proc.returncode == 0, proc.stderr
    assert _nft.normalize(proc.stdout) == _nft.normalize(rendered)


@needs_netns
def test_a_failing_replacement_leaves_the_old_table_whole():
    good = sa.render_table(SERVICES)
    broken = good.replace("dnat to 10.18.1.9", "dnat to nonsense")
    first = _nft.replace_script("ip", "grove_services", good)
    second = _nft.replace_script("ip", "grove_services", broken)
    script = (
        f"nft -f - <<'EOF'\n{first}EOF\n! nft -f - <<'EOF'\n{second}EOF\nnft list table ip grove_services"
    )
    proc = in_private_netns(script)
    assert proc.returncode == 0, proc.stderr
    assert _nft.same_table(proc.stdout, good)
