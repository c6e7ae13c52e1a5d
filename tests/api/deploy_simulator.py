"""A stand-in for playbooks/deploy.yml in the unit tests (the live tests run the real one on the
test bed): it reads the job's descriptor.json and instances.json, places instances with the real
scheduler (module_utils/_scheduler.py) on simulated workers, and emits ansible-runner events exactly
as the contract in docs (README, API section) lists them."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from ansible_collections.grove.edge.plugins.module_utils import _descriptor, _scheduler
from grove_api.jobs.events import REMOVE_TASK, START_TASK
from grove_api.jobs.executor import RunRequest, RunResult

FACTS_TASK = "Read node facts from containerd and the kernel"


class DeploySimulator:
    def __init__(self, workers: dict[str, dict[str, Any]] | None = None, cluster: str = "cluster1") -> None:
        # worker -> node facts; instances live in `self.hosts`.
        self.workers = workers or {
            "c1w1": {"vcpus": 2, "memory_mb": 4000, "memory_free_mb": 4000},
            "c1w2": {"vcpus": 2, "memory_mb": 4000, "memory_free_mb": 4000},
        }
        self.cluster = cluster
        self.hosts: dict[str, dict[tuple[str, int], dict[str, Any]]] = {w: {} for w in self.workers}
        self.unreachable: set[str] = set()
        self.runs: list[RunRequest] = []
        self.files: list[tuple[dict, dict]] = []
        self.fail_start: dict[tuple[str, int], str] = {}
        self.gate: threading.Event | None = None  # set by a test to hold a run in the middle
        self.entered = threading.Event()
        self.probe = None  # called after each event, to watch statuses change
        self.pid = 424242

    # -- helpers for the tests -----------------------------------------------------------------
    def running(self) -> dict[tuple[str, int], str]:
        return {key: worker for worker, instances in self.hosts.items() for key in instances}

    def node(self, worker: str) -> dict[str, Any]:
        instances = [
            {
                "id": _descriptor.instance_id(fqn, n),
                "service": fqn,
                "instance_number": n,
                "status": "RUNNING",
                "resources": spec["resources"],
                "host_ports": spec["host_ports"],
                "address": spec["address"],
            }
            for (fqn, n), spec in sorted(self.hosts[worker].items())
        ]
        return {
            **self.workers[worker],
            "hostname": worker,
            "runtimes": ["container"],
            "architecture": "amd64",
            "instances": instances,
        }

    # -- the executor --------------------------------------------------------------------------
    def _emit(self, request: RunRequest, event: str, **data: Any) -> None:
        request.event_handler({"event": event, "pid": self.pid, "event_data": data})
        if self.probe is not None:
            self.probe(event, data)

    def run(self, request: RunRequest) -> RunResult:
        self.runs.append(request)
        if request.playbook.name == "facts.yml":
            return self._facts(request)
        descriptor = json.loads(Path(request.extravars["descriptor"]).read_text())
        wanted = json.loads(Path(request.extravars["instances_file"]).read_text())
        self.files.append((descriptor, wanted))
        emit = lambda event, **data: self._emit(request, event, **data)  # noqa: E731
        emit("playbook_on_start")
        problems = _descriptor.validate_descriptor(descriptor)
        if problems:
            emit(
                "runner_on_failed",
                task="Validate the descriptor and list its instances",
                host="localhost",
                resolved_action="grove.edge.descriptor",
                res={"msg": "; ".join(map(str, problems))},
            )
            return RunResult(2, "failed")
        parsed = _descriptor.parse_descriptor(descriptor)
        emit("playbook_on_task_start", task=FACTS_TASK)
        nodes = {}
        for worker in self.workers:
            if worker in self.unreachable:
                emit(
                    "runner_on_unreachable",
                    task=FACTS_TASK,
                    host=worker,
                    resolved_action="grove.edge.node_info",
                    res={"msg": "ssh: connect to host: No route to host", "unreachable": True},
                )
                nodes[worker] = {"hostname": worker, "reachable": False, "instances": []}
            else:
                nodes[worker] = dict(self.node(worker), reachable=True)
                emit(
                    "runner_on_ok",
                    task=FACTS_TASK,
                    host=worker,
                    resolved_action="grove.edge.node_info",
                    res={"node": self.node(worker), "changed": False},
                )
        if self.gate is not None:
            self.entered.set()
            self.gate.wait(30)
        services = {s.fqn: s for s in parsed.microservices()}
        # deploy.yml's instances file: null removes a service altogether, like [] its instances.
        requests = [services[fqn].to_schedule_request(wanted.get(fqn, [0]) or []) for fqn in services]
        result = _scheduler.schedule(requests, {self.cluster: {"workers": nodes}})
        placed = {(p["service"], p["instance_number"]): p for p in result["placements"]}
        removals = [
            {"service": fqn, "instance_number": n, "cluster": self.cluster, "worker": worker}
            for worker, instances in self.hosts.items()
            if worker not in self.unreachable
            for (fqn, n) in sorted(instances)
            if fqn in services and ((fqn, n) not in placed or placed[(fqn, n)]["worker"] != worker)
        ]
        emit(
            "runner_on_ok",
            task="Schedule",
            host="localhost",
            resolved_action="grove.edge.schedule",
            res={
                "placements": result["placements"],
                "failures": result["failures"],
                "removals": removals,
                "changed": False,
            },
        )
        item_failed = False
        for worker in self.workers:
            mine = [p for p in result["placements"] if p["worker"] == worker]
            emit("playbook_on_task_start", task=START_TASK)
            emit("runner_on_start", task=START_TASK, host=worker, resolved_action="grove.edge.instance")
            for placement in mine:
                key = (placement["service"], placement["instance_number"])
                if key in self.fail_start:
                    emit(
                        "runner_item_on_failed",
                        task=START_TASK,
                        host=worker,
                        resolved_action="grove.edge.instance",
                        res={
                            "item": placement,
                            "msg": f"{_descriptor.instance_id(*key)}: could not start the task",
                            "stderr": self.fail_start[key],
                            "failed": True,
                        },
                    )
                    item_failed = True
                    continue
                service = services[placement["service"]]
                self.hosts[worker][key] = {
                    "resources": {"vcpus": service.vcpus, "memory": service.memory, "vgpus": 0, "storage": 0},
                    "host_ports": [f"{m.host_port}/{m.protocol}" for m in service.ports],
                    "address": f"10.18.1.{len(self.hosts[worker]) + 2}",
                    "env": dict(e.split("=", 1) for e in service.env_entries()),
                }
                instance = {
                    "id": _descriptor.instance_id(*key),
                    "service": key[0],
                    "instance_number": key[1],
                    "status": "RUNNING",
                    "address": self.hosts[worker][key]["address"],
                    "host_ports": self.hosts[worker][key]["host_ports"],
                }
                emit(
                    "runner_item_on_ok",
                    task=START_TASK,
                    host=worker,
                    resolved_action="grove.edge.instance",
                    res={"item": placement, "instance": instance, "changed": not placement["existing"]},
                )
        for removal in removals:
            self.hosts[removal["worker"]].pop((removal["service"], removal["instance_number"]), None)
            emit(
                "runner_item_on_ok",
                task=REMOVE_TASK,
                host=removal["worker"],
                resolved_action="grove.edge.instance",
                res={"item": removal, "changed": True},
            )
        if result["failures"]:
            names = ", ".join(
                f"{f['service']}.instance.{f['instance_number']} ({f['status']})" for f in result["failures"]
            )
            emit(
                "runner_on_failed",
                task="Fail for the instances that could not be placed",
                host="localhost",
                resolved_action="ansible.builtin.fail",
                res={"msg": f"not placed: {names}"},
            )
        emit("playbook_on_stats", ok={w: 3 for w in self.workers}, changed={}, failures={}, dark={})
        failed = bool(result["failures"]) or item_failed
        return RunResult(2 if failed else 0, "failed" if failed else "successful")

    def _facts(self, request: RunRequest) -> RunResult:
        emit = lambda event, **data: self._emit(request, event, **data)  # noqa: E731
        for worker in self.workers:
            if worker in self.unreachable:
                emit(
                    "runner_on_unreachable",
                    task=FACTS_TASK,
                    host=worker,
                    resolved_action="grove.edge.node_info",
                    res={"msg": "unreachable"},
                )
            else:
                emit(
                    "runner_on_ok",
                    task=FACTS_TASK,
                    host=worker,
                    resolved_action="grove.edge.node_info",
                    res={"node": self.node(worker)},
                )
        emit(
            "runner_on_ok",
            task="Report the clusters",
            host="localhost",
            resolved_action="ansible.builtin.debug",
            res={"msg": {self.cluster: {"workers": {w: {} for w in self.workers}}}},
        )
        for worker in self.workers:
            emit(
                "runner_item_on_ok",
                task="Report each worker's address and location",
                host="localhost",
                resolved_action="ansible.builtin.debug",
                res={"msg": {"worker": worker, "address": f"10.99.1.{10 + len(worker)}", "location": "lab"}},
            )
        return RunResult(0, "successful")
