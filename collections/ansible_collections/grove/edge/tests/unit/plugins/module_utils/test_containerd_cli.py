"""The ctr side of module_utils/_containerd.py, against a stand-in `ctr` program that records its argv."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from ansible_collections.grove.edge.plugins.module_utils._containerd import (
    Containerd,
    ContainerdError,
    _quote,
    error_line,
)

FAKE_CTR = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    with open(os.environ["FAKE_CTR_LOG"], "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\\n")
    answer = os.environ.get("FAKE_CTR_ANSWER", "")
    if answer == "notfound":
        sys.stderr.write("ctr: container \\"x\\": not found\\n")
        sys.exit(1)
    if answer == "fail":
        sys.stderr.write('time="..." level=info msg="trying next host"\\nctr: failed to resolve reference\\n')
        sys.exit(1)
    """
)


@pytest.fixture
def ctr(tmp_path, monkeypatch):
    program = tmp_path / "ctr"
    program.write_text(FAKE_CTR.format(python=sys.executable))
    program.chmod(0o755)
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_CTR_LOG", str(log))

    def run(argv, data=None, env=None):
        proc = subprocess.run(
            argv, input=data, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
        )
        return proc.returncode, proc.stdout, proc.stderr

    client = Containerd(run, "/run/x.sock", "grove", ctr=str(program))
    client.calls = lambda: [json.loads(line) for line in log.read_text().splitlines()]
    return client


BASE = ["--address", "/run/x.sock", "--namespace", "grove"]


def test_run_puts_image_id_and_args_after_a_double_dash(ctr):
    ctr.create(
        "box.1",
        "docker.io/library/x:1",
        ["--env", "A=1"],
        ["--help", "-c"],
        "file:///var/log/grove/box.1.log",
    )
    assert ctr.calls() == [
        [
            *BASE,
            "run",
            "--detach",
            "--log-uri",
            "file:///var/log/grove/box.1.log",
            "--env",
            "A=1",
            "--",
            "docker.io/library/x:1",
            "box.1",
            "--help",
            "-c",
        ]
    ]


def test_create_without_log_uri_makes_a_container_without_task(ctr):
    ctr.create("box.1", "img:1", [], [], None)
    assert ctr.calls() == [[*BASE, "containers", "create", "--", "img:1", "box.1"]]


def test_pull_runs_under_a_deadline_with_the_hosts_dir(ctr, monkeypatch):
    # `timeout` execs ctr, so the recorded argv is ctr's own.
    ctr.pull("docker.io/library/x:1", "/etc/containerd/certs.d", 30)
    assert ctr.calls() == [
        [*BASE, "images", "pull", "--hosts-dir", "/etc/containerd/certs.d", "--", "docker.io/library/x:1"]
    ]
    monkeypatch.setenv("FAKE_CTR_ANSWER", "fail")
    with pytest.raises(
        ContainerdError, match=r"pull image docker\.io/library/x:1: ctr: failed to resolve"
    ) as info:
        ctr.pull("docker.io/library/x:1", "", 30)
    assert "trying next host" in info.value.stderr


def test_not_found_is_an_answer_for_deletes_and_an_error_elsewhere(ctr, monkeypatch):
    monkeypatch.setenv("FAKE_CTR_ANSWER", "notfound")
    assert ctr.delete_task("box.1") is False
    assert ctr.delete_container("box.1") is False
    assert ctr.snapshot_exists("box.1") is False
    with pytest.raises(ContainerdError, match='start task: ctr: container "x": not found'):
        ctr.start("box.1", "file:///l")


def test_labels_are_set_in_one_call_and_empty_values_clear(ctr):
    ctr.set_labels("box.1", {"grove.state": "", "grove.address": "10.18.0.2"})
    assert ctr.calls() == [
        [*BASE, "containers", "label", "--", "box.1", "grove.address=10.18.0.2", "grove.state="]
    ]


def test_error_line_prefers_ctrs_own_message():
    assert error_line('time="x" level=info msg="a"\nctr: boom\n') == "ctr: boom"
    assert error_line("something odd\n") == "something odd"
    assert error_line("", "out", 3) == "out"
    assert error_line("", "", 3) == "ctr exited with 3"


def test_filter_values_are_quoted():
    assert _quote('a"b\\c') == '"a\\"b\\\\c"'
