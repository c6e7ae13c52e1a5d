"""grove.edge.supervised_daemon: real supervisor processes running a real command."""

import os
import signal
import time

import pytest
from ansible_collections.grove.edge.plugins.modules import supervised_daemon
from test_schedule_module import run_module

MODULE_FILE = supervised_daemon.__file__
SLEEP = ["/bin/sleep", "3600"]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


@pytest.fixture
def daemon(tmp_path):
    args = {"name": "sleeper", "run_dir": str(tmp_path / "run"), "log_path": str(tmp_path / "sleeper.log")}

    def call(**extra):
        return run_module(tmp_path, module_file=MODULE_FILE, **dict(args, **extra))

    yield call
    result = call(state="stopped")
    assert "failed" not in result, result


def test_start_is_idempotent_and_the_command_runs(daemon):
    started = daemon(command=SLEEP)
    assert started["changed"] is True and alive(started["child_pid"]) and alive(started["pid"])
    again = daemon(command=SLEEP)
    assert again["changed"] is False
    assert again["child_pid"] == started["child_pid"]
    with open(f"/proc/{started['child_pid']}/cmdline", "rb") as cmdline:
        assert cmdline.read().split(b"\0")[:2] == [b"/bin/sleep", b"3600"]


def test_a_command_that_dies_is_started_again(daemon):
    started = daemon(command=SLEEP)
    os.kill(started["child_pid"], signal.SIGKILL)
    wait_for(lambda: daemon(command=SLEEP)["child_pid"] not in (None, started["child_pid"]))
    assert daemon(command=SLEEP)["pid"] == started["pid"]


def test_restarted_replaces_the_child_and_stopped_ends_everything(daemon):
    started = daemon(command=SLEEP)
    restarted = daemon(command=SLEEP, state="restarted")
    assert restarted["changed"] is True
    assert restarted["child_pid"] != started["child_pid"] and alive(restarted["child_pid"])
    wait_for(lambda: not alive(started["child_pid"]))
    stopped = daemon(state="stopped")
    assert stopped["changed"] is True and stopped["pid"] is None
    wait_for(lambda: not alive(restarted["child_pid"]) and not alive(restarted["pid"]))
    assert daemon(state="stopped")["changed"] is False


def test_a_new_command_replaces_the_old_one(daemon):
    started = daemon(command=SLEEP)
    other = daemon(command=["/bin/sleep", "3601"])
    assert other["changed"] is True and other["command"] == ["/bin/sleep", "3601"]
    wait_for(lambda: not alive(started["child_pid"]))


def test_check_mode_starts_nothing(daemon, tmp_path):
    result = daemon(command=SLEEP, _ansible_check_mode=True)
    assert result["changed"] is True and result["pid"] is None
    assert not (tmp_path / "run" / "sleeper.json").exists()


def test_bad_input_is_refused_with_the_field(daemon):
    assert "name must not contain" in daemon(name="../x", command=SLEEP)["msg"]
    assert "command must not be empty" in daemon(command=[])["msg"]
    assert "command" in daemon(state="started")["msg"]
