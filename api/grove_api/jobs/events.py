"""ansible-runner events of deploy.yml -> instance status changes as they happen, and the job's
event log (task names and per-host results). The event names and results follow the contract of
playbooks/deploy.yml (docs: the API section of README.md)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from grove_api.jobs.plan import Plan
from grove_api.services import status as st
from grove_api.store import Store

log = logging.getLogger("grove_api")

SCHEDULE = "grove.edge.schedule"
INSTANCE = "grove.edge.instance"
NODE_INFO = "grove.edge.node_info"
START_TASK = "Start each instance placed on this worker"
REMOVE_TASK = "Remove the instances the placement drops"
LOGGED = {
    "playbook_on_play_start",
    "playbook_on_task_start",
    "runner_on_ok",
    "runner_on_failed",
    "runner_on_unreachable",
    "runner_on_skipped",
    "runner_item_on_ok",
    "runner_item_on_failed",
    "runner_item_on_skipped",
    "playbook_on_stats",
    "error",
    "warning",
}
MESSAGE_LIMIT = 2000
HISTORY_LIMIT = 50


def _reasons(reasons: dict[str, str] | None) -> str:
    return "; ".join(f"{where}: {why}" for where, why in sorted((reasons or {}).items()))


def _failure_text(res: dict[str, Any]) -> str:
    text = str(res.get("msg") or res.get("reason") or "failed")
    stderr = str(res.get("stderr") or "").strip()
    if stderr and stderr not in text:
        text = f"{text}: {stderr[-500:]}"
    return text[:MESSAGE_LIMIT]


def _item_label(res: dict[str, Any]) -> str:
    label = res.get("_ansible_item_label")
    if label is None:
        item = res.get("item")
        if isinstance(item, dict) and "service" in item:
            label = f"{item['service']}.instance.{item.get('instance_number')}"
        else:
            label = item
    return "" if label is None else str(label)[:200]


class RunRecorder:
    """The event_handler of one run; `finish` settles what the events left open."""

    def __init__(
        self, store: Store, run_id: str, plan: Plan, addresses: dict[str, str] | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.plan = plan
        self.addresses = addresses or {}
        self.pid: int | None = None
        self.on_pid: Any = None
        self.seq = 0
        self.touched: set[tuple[str, int]] = set()
        self.started: set[tuple[str, int]] = set()
        self.placed_on: dict[str, list[dict[str, Any]]] = {}
        self.removed: set[tuple[str, int]] = set()
        self.nodes: dict[str, dict[str, Any]] = {}
        self.unreachable: dict[str, str] = {}
        self.failures: list[str] = []
        self.cluster_of: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- store updates -------------------------------------------------------------------------
    def _set(self, fqn: str, number: int, **changes: Any) -> None:
        record = self.plan.records.get((fqn, number))
        if record is None:
            return
        now = changes["last_modified_timestamp"] = time.time()
        if "status" in changes:
            changes["status"] = st.oakestra_status(changes["status"])
            if changes["status"] != record.get("status"):
                # Grove's addition: every step an instance went through, for clients that poll
                # too slowly to see each one.
                history = [
                    *(record.get("status_history") or []),
                    {"status": changes["status"], "timestamp": now},
                ]
                changes["status_history"] = history[-HISTORY_LIMIT:]
        self.store.update("instances", record["_id"], changes)
        record.update(changes)

    # -- the event handler ---------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> bool:
        try:
            with self._lock:
                self._handle(event)
        except Exception:  # an event must never break the run: log it and go on
            log.exception("could not handle event %s of run %s", event.get("event"), self.run_id)
        return False  # nothing to write to the job dir: events go to the store

    def _handle(self, event: dict[str, Any]) -> None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        if self.pid is None and event.get("pid"):
            self.pid = int(event["pid"])
            if self.on_pid is not None:
                self.on_pid(self.pid)
        action = data.get("resolved_action") or data.get("task_action") or ""
        task = data.get("task", "")
        host = data.get("host", "")
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        self._log(name, data, task, host, res)
        if action == SCHEDULE and name == "runner_on_ok":
            self._scheduled(res)
        elif action == INSTANCE and task == START_TASK:
            if name == "runner_on_start":
                self._creating(host)
            elif name == "runner_item_on_ok":
                self._started(host, res)
            elif name == "runner_item_on_failed":
                self._start_failed(host, res)
        elif action == INSTANCE and task == REMOVE_TASK:
            item = res.get("item") or {}
            if name == "runner_item_on_ok" and isinstance(item, dict):
                self.removed.add((item.get("service"), item.get("instance_number")))
            elif name == "runner_item_on_failed":
                self.failures.append(f"{task} on {host}: {_failure_text(res)}")
        elif action == NODE_INFO:
            if name == "runner_on_ok":
                self.nodes[host] = res.get("node") or {}
            elif name in ("runner_on_unreachable", "runner_on_failed"):
                self.unreachable[host] = _failure_text(res)
        elif name in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            self.failures.append(f"{task} on {host}: {_failure_text(res)}")

    def _log(self, name: str, data: dict[str, Any], task: str, host: str, res: dict[str, Any]) -> None:
        if name not in LOGGED:
            return
        self.seq += 1
        result, message, item = "", "", ""
        if name.startswith("runner_"):
            item = _item_label(res) if "item" in name else ""
            if name.endswith("_failed"):
                result, message = "failed", _failure_text(res)
            elif name.endswith("_unreachable"):
                result, message = "unreachable", _failure_text(res)
            elif name.endswith("_skipped"):
                result = "skipped"
            else:
                result = "changed" if res.get("changed") else "ok"
                message = self._ok_message(data, res)
        elif name == "playbook_on_play_start":
            message = data.get("play", "")
        elif name == "playbook_on_stats":
            message = self._stats(data)
        elif name in ("error", "warning"):
            message = str(data.get("msg") or "")[:MESSAGE_LIMIT]
        self.store.insert(
            "job_events",
            {
                "run_id": self.run_id,
                "seq": self.seq,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "event": name,
                "task": task,
                "host": host,
                "item": item,
                "result": result,
                "message": message,
            },
        )

    @staticmethod
    def _ok_message(data: dict[str, Any], res: dict[str, Any]) -> str:
        action = data.get("resolved_action") or ""
        if action == SCHEDULE:
            return (
                f"{len(res.get('placements') or [])} placed, {len(res.get('failures') or [])} not placed, "
                f"{len(res.get('removals') or [])} to remove"
            )
        if action == NODE_INFO:
            node = res.get("node") or {}
            return (
                f"{node.get('vcpus', '?')} vcpus, {node.get('memory_free_mb', '?')} MB free, "
                f"{len(node.get('instances') or [])} instances"
            )
        if action == INSTANCE and isinstance(res.get("instance"), dict):
            instance = res["instance"]
            return f"{instance.get('status', '')} {instance.get('address', '')}".strip()
        return ""

    @staticmethod
    def _stats(data: dict[str, Any]) -> str:
        hosts = sorted(set().union(*(data.get(key) or {} for key in ("ok", "changed", "failures", "dark"))))
        parts = []
        for host in hosts:
            counts = {
                key: (data.get(key) or {}).get(host, 0) for key in ("ok", "changed", "failures", "dark")
            }
            parts.append(
                f"{host}: ok={counts['ok']} changed={counts['changed']} failed={counts['failures']} "
                f"unreachable={counts['dark']}"
            )
        return "; ".join(parts)

    # -- status changes ------------------------------------------------------------------------
    def _scheduled(self, res: dict[str, Any]) -> None:
        for placement in res.get("placements") or []:
            key = (placement.get("service"), placement.get("instance_number"))
            self.touched.add(key)
            worker = placement.get("worker", "")
            self.cluster_of[worker] = placement.get("cluster", "")
            self.placed_on.setdefault(worker, []).append(placement)
            record = self.plan.records.get(key)
            if record is None:
                continue
            changes = {
                "cluster_id": placement.get("cluster", ""),
                "worker_id": worker,
                "host_ip": self.addresses.get(worker, ""),
            }
            if (
                placement.get("existing")
                and record.get("status") in st.HEALTHY
                and record.get("worker_id") == worker
            ):
                self._set(*key, **changes)
            else:
                # Grove's scheduler picks the cluster, then the worker in it, in one call: both
                # steps are recorded, in Oakestra's order.
                self._set(
                    *key, status=st.CLUSTER_SCHEDULED, status_detail=f"cluster {placement.get('cluster')}"
                )
                self._set(
                    *key,
                    status=st.NODE_SCHEDULED,
                    status_detail=f"placed on {placement.get('cluster')}/{worker}",
                    **changes,
                )
        for failure in res.get("failures") or []:
            key = (failure.get("service"), failure.get("instance_number"))
            self.touched.add(key)
            status = failure.get("status") or st.FAILED
            detail = _reasons(failure.get("reasons")) or "no worker can take it"
            self._set(*key, status=status, status_detail=detail, cluster_id="", worker_id="", host_ip="")

    def _creating(self, host: str) -> None:
        for placement in self.placed_on.get(host, []):
            key = (placement.get("service"), placement.get("instance_number"))
            record = self.plan.records.get(key)
            if record is not None and record.get("status") not in st.HEALTHY:
                self._set(*key, status=st.CREATING, status_detail=f"starting on {host}")

    def _started(self, host: str, res: dict[str, Any]) -> None:
        item = res.get("item") or {}
        instance = res.get("instance") or {}
        key = (item.get("service"), item.get("instance_number"))
        self.started.add(key)
        status = instance.get("status") or st.RUNNING
        detail = (
            f"running on {item.get('cluster', '')}/{host}"
            if status == st.RUNNING
            else (instance.get("status_detail") or f"{status} on {host}")
        )
        self._set(
            *key,
            status=status,
            status_detail=detail,
            worker_id=host,
            cluster_id=item.get("cluster", self.cluster_of.get(host, "")),
            host_ip=self.addresses.get(host, ""),
            address=instance.get("address", ""),
            host_ports=list(instance.get("host_ports") or []),
        )

    def _start_failed(self, host: str, res: dict[str, Any]) -> None:
        item = res.get("item") or {}
        key = (item.get("service"), item.get("instance_number"))
        self.started.add(key)
        self._set(*key, status=st.FAILED, status_detail=_failure_text(res), worker_id=host)
        self.failures.append(f"{key[0]} instance {key[1]} on {host}: {_failure_text(res)}")

    # -- the end of the run --------------------------------------------------------------------
    def on_host(self, key: tuple[str, int]) -> list[str]:
        """Answering workers that still run this instance (per the node facts read in this run)."""
        hosts = []
        for host, node in self.nodes.items():
            for instance in node.get("instances") or []:
                if (instance.get("service"), instance.get("instance_number")) == key and str(
                    instance.get("status", "")
                ).upper() != st.UNDEPLOYED:
                    hosts.append(host)
        return hosts

    def finish(self, rc: int | None, error: str = "") -> list[str]:
        """Settle every covered instance; remove the records of instances confirmed gone. Returns
        the problems that make the job fail."""
        problems = list(self.failures)
        if error:
            problems.insert(0, error)
        reason = problems[0] if problems else f"the deploy run ended (rc={rc}) without an answer for it"
        for key, record in list(self.plan.records.items()):
            service = self.plan.services.get(key[0], {})
            if record.get("deleting") or service.get("deleting"):
                self._settle_removal(key, record, problems)
            elif record.get("status") in st.IN_PROGRESS and key not in self.started:
                self._set(*key, status=st.FAILED, status_detail=reason)
                if not problems:
                    problems.append(f"{key[0]} instance {key[1]}: {reason}")
        return problems

    def _settle_removal(self, key: tuple[str, int], record: dict[str, Any], problems: list[str]) -> None:
        worker = record.get("worker_id") or ""
        still = self.on_host(key)
        confirmed = key in self.removed or (not still and (not worker or worker in self.nodes))
        if confirmed:
            self.store.delete("instances", record["_id"])
            record["removed"] = True
            return
        where = (
            ", ".join(still) or f"{worker} (it did not answer: {self.unreachable.get(worker, 'no facts')})"
        )
        detail = f"removal not confirmed: still on {where}; it will be retried"
        self._set(*key, status_detail=detail)
        problems.append(f"{key[0]} instance {key[1]}: {detail}")
