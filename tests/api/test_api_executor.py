"""The ansible-runner executor with a real playbook on localhost (no test bed): the environment
finds the collection, events reach the handler with the fields the recorder reads."""

from __future__ import annotations

import textwrap

from conftest import make_settings
from grove_api.jobs.executor import AnsibleRunnerExecutor, RunRequest

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
