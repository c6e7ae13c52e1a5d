"""The ansible-runner executor with a real playbook on localhost (no test bed): the environment
finds the collection, events reach the handler with the fields the recorder reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import make_settings
from grove_api.jobs.executor import (
    RUN_MARKER,
    AnsibleRunnerExecutor,
    RunRequest,
    ansible_environment,
    close_connections,
    configured_ssh_args,
    control_dir,
    run_processes,
    stop_run_processes,
)

PLAYBOOK = textwrap.dedent("""\
    - name: Place two instances
      hosts: localhost
      gather_facts: false
      tasks:
        - name: Schedule
          grove.edge.schedule:
            services:
              - service: a.b.c.d
                requirements: {vcpus: 1, memory: 10, virtualization: container}
                instance_numbers: "{{ [0, 1] }}"
                host_ports: []
            clusters:
              cluster1:
                workers:
                  w1: {vcpus: 2, memory_mb: 100, runtimes: [container], instances: []}
        - name: Echo the descriptor path verbatim
          ansible.builtin.debug:
            msg: "{{ descriptor }}"
    """)


def test_a_playbook_runs_through_ansible_runner_and_its_events_reach_the_handler(tmp_path):
    settings = make_settings(tmp_path)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    private = tmp_path / "job"
    private.mkdir()
    events = []
    result = AnsibleRunnerExecutor(settings).run(
        RunRequest(
            playbook=playbook,
            inventory=inventory,
            private_dir=private,
            extravars={"descriptor": str(tmp_path / "descriptor.json")},
            event_handler=lambda event: events.append(event) or False,
        )
    )
    assert result.status == "successful" and result.rc == 0
    assert all(event.get("pid") for event in events)
    schedule = next(
        e
        for e in events
        if e["event"] == "runner_on_ok" and e["event_data"].get("resolved_action") == "grove.edge.schedule"
    )
    res = schedule["event_data"]["res"]
    assert [(p["instance_number"], p["worker"]) for p in res["placements"]] == [(0, "w1"), (1, "w1")]
    debug = next(
        e for e in events if e["event"] == "runner_on_ok" and e["event_data"]["task"].startswith("Echo")
    )
    assert debug["event_data"]["res"]["msg"] == str(tmp_path / "descriptor.json")
    # The handler answered False: ansible-runner wrote no event files.
    assert not list((private / "artifacts" / "run" / "job_events").glob("*.json"))


def test_a_cancelled_run_stops_and_says_so(tmp_path):
    settings = make_settings(tmp_path)
    playbook = tmp_path / "slow.yml"
    playbook.write_text(
        "- name: Wait\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Wait long\n      ansible.builtin.pause:\n        seconds: 60\n"
    )
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("localhost ansible_connection=local\n")
    (tmp_path / "job").mkdir()
    started = []
    result = AnsibleRunnerExecutor(settings).run(
        RunRequest(
            playbook=playbook,
            inventory=inventory,
            private_dir=tmp_path / "job",
            extravars={},
            event_handler=lambda event: started.append(event["event"]) or False,
            cancel=lambda: "playbook_on_task_start" in started,
        )
    )
    assert result.status == "canceled"
    # Ansible's workers run in sessions of their own: none of them outlives the cancelled run.
    assert run_processes(tmp_path / "job") == []


def test_every_process_of_a_run_is_found_by_its_marker_and_stopped(tmp_path):
    private = tmp_path / "job"
    env = {**os.environ, RUN_MARKER: str(private)}
    # Like Ansible's workers: a new session, and a child that would outlive its parent.
    leader = subprocess.Popen(["sh", "-c", "sleep 300 & exec sleep 300"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "300"], env={**os.environ, RUN_MARKER: str(tmp_path / "other")})
    try:
        deadline = 50
        while len(run_processes(private)) < 2 and deadline:
            deadline -= 1
            subprocess.run(["sleep", "0.1"], check=True)
        found = run_processes(private)
        assert leader.pid in found and len(found) == 2
        assert sorted(stop_run_processes(private)) == sorted(found)
        assert run_processes(private) == []
        assert leader.wait(10) is not None
        assert other.poll() is None  # another run's process is left alone
    finally:
        other.kill()
        other.wait()
        leader.kill()
        leader.wait()


def _runner_env(tmp_path, settings):
    """The environment ansible-runner really gives ansible-playbook for our variables."""
    from ansible_runner.config.runner import RunnerConfig  # noqa: PLC0415

    (tmp_path / "job").mkdir(exist_ok=True)
    config = RunnerConfig(
        private_data_dir=str(tmp_path / "job"),
        playbook="play.yml",
        envvars=ansible_environment(settings, tmp_path / "job"),
    )
    config.prepare()
    return config.env


def test_runs_check_host_keys_although_ansible_runner_turns_that_off_by_default(tmp_path):
    env = _runner_env(tmp_path, make_settings(tmp_path))
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"


def test_runs_share_one_ssh_control_directory_in_the_data_dir_unless_told_otherwise(tmp_path):
    shared = _runner_env(tmp_path, make_settings(tmp_path))
    assert shared["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(control_dir(make_settings(tmp_path)))
    assert shared["ANSIBLE_SSH_CONTROL_PATH_DIR"].startswith(str(tmp_path / "data"))
    own = _runner_env(tmp_path, make_settings(tmp_path, ssh_shared_connections=False))
    assert "ANSIBLE_SSH_CONTROL_PATH_DIR" not in own


def test_closing_connections_without_any_is_a_no_op(tmp_path):
    settings = make_settings(tmp_path)
    assert close_connections(settings) == 0
    control_dir(settings).mkdir(parents=True)
    (control_dir(settings) / "not-a-socket").write_text("")
    assert close_connections(settings) == 0


PING = textwrap.dedent("""\
    - name: Ping
      hosts: all
      gather_facts: false
      tasks:
        - name: Ping
          ansible.builtin.ping:
    """)


def _inventory_trusting(testbed, tmp_path, known_hosts: Path) -> Path:
    """The test bed's inventory with another known_hosts file and without its own
    ansible_ssh_host_key_checking, as an operator's inventory may well be."""
    data = yaml.safe_load(testbed.inventory.read_text())
    group_vars = data["all"]["vars"]
    group_vars.pop("ansible_ssh_host_key_checking", None)
    group_vars["ansible_ssh_common_args"] = (
        f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
    )
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.testbed
@pytest.mark.parametrize("mitogen", [False, True], ids=["linear", "mitogen"])
def test_a_worker_answering_with_another_host_key_is_refused(testbed, tmp_path, mitogen):
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    real_keys = Path(
        yaml.safe_load(testbed.inventory.read_text())["all"]["vars"]["ansible_ssh_common_args"]
        .split("UserKnownHostsFile=")[1]
        .split()[0]
    ).read_text()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(
        "".join(
            f"{hv['ansible_host']} {' '.join(impostor.with_suffix('.pub').read_text().split()[:2])}\n"
            for hv in testbed.hosts.values()
        )
    )
    right = tmp_path / "right_known_hosts"
    right.write_text(real_keys)
    playbook = tmp_path / "ping.yml"
    playbook.write_text(PING)
    results = {}
    # The impostor first, each case with a data dir (and SSH control directory) of its own: a
    # master connection opened with the right keys would otherwise carry the second run.
    for name, known_hosts in (("wrong", wrong), ("right", right)):
        settings = make_settings(tmp_path / name, mitogen=mitogen)
        private = tmp_path / name / "job"
        private.mkdir(parents=True)
        events = []
        try:
            results[name] = AnsibleRunnerExecutor(settings).run(
                RunRequest(
                    playbook=playbook,
                    inventory=_inventory_trusting(testbed, tmp_path / name, known_hosts),
                    private_dir=private,
                    extravars={},
                    event_handler=lambda event, events=events: events.append(event["event"]) or False,
                )
            )
        finally:
            close_connections(settings)
        results[name + "_events"] = events
    assert results["right"].status == "successful", results["right_events"]
    assert results["wrong"].status == "failed"
    assert "runner_on_unreachable" in results["wrong_events"]
    assert "runner_on_ok" not in results["wrong_events"]


def test_mitogen_runs_share_ssh_masters_through_a_control_path_in_ssh_args(tmp_path):
    # make_settings puts the data dir at PATH/data: a short PATH keeps the control path short.
    short = make_settings(Path(tempfile.mkdtemp(prefix="g")), mitogen=True)
    try:
        env = _runner_env(tmp_path, short)
        assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
        assert env["ANSIBLE_SSH_ARGS"].startswith(configured_ssh_args(short))
        assert env["ANSIBLE_SSH_ARGS"].endswith(f" -o ControlPath={control_dir(short)}/%C")
        assert "ControlPersist=60s" in env["ANSIBLE_SSH_ARGS"]  # ansible.cfg's own options stay
    finally:
        shutil.rmtree(short.data_dir.parent, ignore_errors=True)
    # A control path too long for a socket address: no sharing rather than failing connections.
    deep = make_settings(tmp_path / ("d" * 60), mitogen=True)
    assert "ANSIBLE_SSH_ARGS" not in _runner_env(tmp_path, deep)
    linear = _runner_env(tmp_path, make_settings(tmp_path, mitogen=False))
    assert "ANSIBLE_SSH_ARGS" not in linear and linear.get("ANSIBLE_STRATEGY") != "mitogen_linear"
