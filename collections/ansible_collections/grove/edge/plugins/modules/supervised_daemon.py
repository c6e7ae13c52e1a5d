#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: supervised_daemon
short_description: Run a daemon under a small supervisor on hosts without systemd
version_added: "0.1.0"
description:
  - Starts, restarts or stops one long-running command under a detached supervisor process that
    restarts the command when it exits (with back-off), restarts it on request, and stops it cleanly.
  - Meant for hosts where systemd is not PID 1, such as containers and Grove's local test bed.
    Where systemd runs, use M(ansible.builtin.systemd_service) instead.
  - The supervisor's state lives in O(run_dir)/O(name).json, so a second identical call reports no change.
options:
  name:
    description: Name of the daemon; names the state file and the default log file.
    type: str
    required: true
  command:
    description:
      - Command and arguments to run, as a list (no shell).
      - Required when O(state=started) or O(state=restarted).
      - When the running daemon was started with another command, it is restarted with this one.
    type: list
    elements: str
  state:
    description:
      - V(started) ensures the supervisor runs this command.
      - V(restarted) restarts the command (starts it when not running).
      - V(stopped) stops the command and its supervisor.
    type: str
    choices: [started, restarted, stopped]
    default: started
  run_dir:
    description: Directory of the supervisor's state file.
    type: path
    default: /run/grove
  log_path:
    description:
      File that receives the command's standard output and error. Defaults to C(/var/log/grove/<name>.log).
    type: path
  timeout:
    description: Seconds to wait for the command to start or stop.
    type: float
    default: 30
author:
  - Grove developers (@grove)
notes:
  - Check mode reports what would change without starting or stopping anything.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Run containerd under the supervisor
  grove.edge.supervised_daemon:
    name: containerd
    command: [/usr/bin/containerd, --config, /etc/containerd/config.toml]

- name: Restart containerd after a configuration change
  grove.edge.supervised_daemon:
    name: containerd
    command: [/usr/bin/containerd, --config, /etc/containerd/config.toml]
    state: restarted

- name: Stop it
  grove.edge.supervised_daemon:
    name: containerd
    state: stopped
"""

RETURN = r"""
pid:
  description: Process id of the supervisor (null when stopped).
  returned: always
  type: int
  sample: 4242
child_pid:
  description: Process id of the supervised command (null when stopped).
  returned: always
  type: int
  sample: 4243
command:
  description: The command that runs (empty when stopped).
  returned: always
  type: list
  elements: str
  sample: [/usr/bin/containerd, --config, /etc/containerd/config.toml]
"""

import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils._supervisor import read_state, spawn


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    return None


def _result(state):
    if state is None:
        return {"pid": None, "child_pid": None, "command": []}
    return {"pid": state["pid"], "child_pid": state.get("child_pid"), "command": state["command"]}


def _stop(module, name, run_dir, state, timeout):
    os.kill(state["pid"], signal.SIGTERM)
    if _wait(lambda: read_state(run_dir, name) is None, timeout) is None:
        module.fail_json(
            msg="daemon %s: supervisor %d did not stop within %ss" % (name, state["pid"], timeout)
        )


def _start(module, name, command, run_dir, *, log_path, timeout):
    spawn(command, run_dir, name, log_path)
    started = _wait(
        lambda: (read_state(run_dir, name) or {}).get("child_pid") and read_state(run_dir, name),
        timeout,
    )
    if started is None:
        module.fail_json(
            msg="daemon %s: supervisor did not start %s within %ss; see %s"
            % (name, command, timeout, log_path)
        )
    return started


def _restart(module, name, run_dir, state, timeout):
    old_child = state.get("child_pid")
    os.kill(state["pid"], signal.SIGHUP)
    restarted = _wait(
        lambda: (
            (read_state(run_dir, name) or {}).get("child_pid") not in (None, old_child)
            and read_state(run_dir, name)
        ),
        timeout,
    )
    if restarted is None:
        module.fail_json(msg="daemon %s: command was not restarted within %ss" % (name, timeout))
    return restarted


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "command": {"type": "list", "elements": "str"},
            "state": {"type": "str", "choices": ["started", "restarted", "stopped"], "default": "started"},
            "run_dir": {"type": "path", "default": "/run/grove"},
            "log_path": {"type": "path"},
            "timeout": {"type": "float", "default": 30},
        },
        required_if=[("state", "started", ["command"]), ("state", "restarted", ["command"])],
        supports_check_mode=True,
    )
    params = module.params
    name, command, wanted = params["name"], params["command"], params["state"]
    if "/" in name or name.startswith("."):
        module.fail_json(msg="daemon %s: name must not contain '/' or start with '.'" % name)
    if command is not None and not command:
        module.fail_json(msg="daemon %s: command must not be empty" % name)
    run_dir, timeout = params["run_dir"], params["timeout"]
    log_path = params["log_path"] or "/var/log/grove/%s.log" % name

    current = read_state(run_dir, name)
    before = {"running": current is not None, "command": current["command"] if current else []}
    if wanted == "stopped":
        after = {"running": False, "command": []}
    else:
        after = {"running": True, "command": command}
    changed = before != after or wanted == "restarted"
    if module.check_mode or not changed:
        module.exit_json(changed=changed, diff={"before": before, "after": after}, **_result(current))

    if wanted == "stopped":
        _stop(module, name, run_dir, current, timeout)
        final = None
    elif current is not None and current["command"] == command:
        final = _restart(module, name, run_dir, current, timeout)
    else:
        if current is not None:
            _stop(module, name, run_dir, current, timeout)
        final = _start(module, name, command, run_dir, log_path=log_path, timeout=timeout)
    module.exit_json(changed=True, diff={"before": before, "after": after}, **_result(final))


if __name__ == "__main__":
    main()
