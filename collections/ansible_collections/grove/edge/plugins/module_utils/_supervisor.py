# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal process supervisor for hosts without systemd.

The supervisor is a detached Python process that runs one command, restarts it when it exits
(with back-off), restarts it on SIGHUP, and stops it on SIGTERM. Its state file records its own
pid and start time (to survive pid reuse), the supervised command, and the child's pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
# A child that ran this long counts as healthy: the next crash restarts it without delay.
HEALTHY_AFTER = 10.0


def state_path(run_dir, name):
    return os.path.join(run_dir, name + ".json")


def _start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[19]


def read_state(run_dir, name):
    """The supervisor's state if it is alive, else None."""
    try:
        with open(state_path(run_dir, name)) as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    if _start_time(state.get("pid", -1)) != state.get("start_time"):
        return None
    return state


def _write_state(path, state):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(state, handle)
    os.replace(tmp, path)


def _supervise(command, path, log_path):
    state = {
        "pid": os.getpid(),
        "start_time": _start_time(os.getpid()),
        "command": command,
        "child_pid": None,
        "restarts": 0,
    }
    flags = {"stop": False, "restart": False}
    child = {"proc": None}

    def _on_term(_signum, _frame):
        flags["stop"] = True
        if child["proc"] is not None:
            child["proc"].terminate()

    def _on_hup(_signum, _frame):
        flags["restart"] = True
        if child["proc"] is not None:
            child["proc"].terminate()

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_hup)
    backoff = BACKOFF_START
    with open(log_path, "ab") as log:
        while not flags["stop"]:
            started = time.monotonic()
            child["proc"] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            state["child_pid"] = child["proc"].pid
            _write_state(path, state)
            child["proc"].wait()
            if flags["stop"]:
                break
            if flags["restart"]:
                flags["restart"] = False
                backoff = BACKOFF_START
                continue
            state["restarts"] += 1
            if time.monotonic() - started > HEALTHY_AFTER:
                backoff = BACKOFF_START
            else:
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
    try:
        os.unlink(path)
    except OSError:
        pass


def spawn(command, run_dir, name, log_path):
    """Start a detached supervisor for `command`; returns at once in the caller."""
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        # Detach from the SSH session's pipes, or the session would wait for the daemon to exit.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 65536)
        os.chdir("/")
        _supervise(command, state_path(run_dir, name), log_path)
    finally:
        os._exit(0)
