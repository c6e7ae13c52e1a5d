"""The job runner: one at a time per inventory, even with several API worker processes (a file
lock in the data dir, plus an atomic claim of each job in the store). Jobs queued while a run goes
on are batched into the next run, so a burst of requests makes few playbook runs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grove_api.jobs import facts as facts_module
from grove_api.jobs.events import RunRecorder
from grove_api.jobs.executor import (
    AnsibleRunnerExecutor,
    Executor,
    RunRequest,
    close_connections,
    stop_run_processes,
)
from grove_api.jobs.plan import build_plan
from grove_api.jobs.queue import (
    FAILED,
    QUEUED,
    REMOVE,
    RUN_FINISHED,
    RUN_INTERRUPTED,
    RUN_RUNNING,
    RUNNING,
    SUCCEEDED,
    JobQueue,
)
from grove_api.jobs.retention import prune
from grove_api.services import status as st
from grove_api.settings import Settings
from grove_api.store import AnyOf, Store

log = logging.getLogger("grove_api")

DEPLOY_PLAYBOOK = "deploy.yml"
FACTS_PLAYBOOK = "facts.yml"
PRUNE_INTERVAL_SECONDS = 3600


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class JobRunner:
    def __init__(self, settings: Settings, store: Store, executor: Executor | None = None) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor or AnsibleRunnerExecutor(settings)
        self.inventory = str(settings.inventory or "")
        digest = hashlib.sha256(self.inventory.encode()).hexdigest()[:16]
        self.lock_path = settings.data_dir / "locks" / f"runner-{digest}.lock"
        self.facts_key = f"facts-{digest}"
        self.prune_key = f"prune-{digest}"
        self.queue = JobQueue(store, self.inventory, self.wake)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.settings.inventory:
            log.warning("no inventory (--inventory / GROVE_INVENTORY): jobs are queued but not run")
            return
        self._thread = threading.Thread(target=self._loop, name="grove-job-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            # The SSH master connections the runs share would outlive the API (ControlPersist);
            # not while another API process of this inventory is in the middle of a run.
            with try_lock(self.lock_path) as held:
                if held:
                    close_connections(self.settings)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.tick()
            except Exception:
                log.exception("the job runner failed; it goes on")
                busy = False
            if not busy:
                self._wake.wait(self.settings.job_poll_seconds)
                self._wake.clear()

    def tick(self) -> bool:
        """One step: recover what a dead process left, run the queued jobs, or refresh the facts.
        True when it ran something (look again at once)."""
        with try_lock(self.lock_path) as held:
            if not held:
                return False
            self.recover()
            jobs = self._queued()
            if jobs:
                jobs = self._batch(jobs)
                if not jobs:
                    return False
                self.run_jobs(jobs)
                return True
            if self._facts_due():
                self.refresh_facts()
                return True
            if self._prune_due():
                self.prune_jobs()
        return False

    def _batch(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Wait for more requests, at most job_batch_seconds after the oldest, but no longer than
        job_batch_quiet_seconds after the newest: a lone request starts at once, a burst is taken
        whole. The jobs to run; none when stopping."""
        while jobs:
            now = time.time()
            oldest = min(j["created_at"] for j in jobs)
            newest = max(j["created_at"] for j in jobs)
            wait = min(
                self.settings.job_batch_seconds - (now - oldest),
                self.settings.job_batch_quiet_seconds - (now - newest),
            )
            if wait <= 0:
                return jobs
            if self._stopping.wait(wait):
                return []
            jobs = self._queued()
        return jobs

    def _queued(self) -> list[dict[str, Any]]:
        return self.store.find("jobs", {"state": QUEUED, "inventory": self.inventory})

    # -- recovery ------------------------------------------------------------------------------
    def recover(self) -> None:
        """Holding the lock, any run still marked running was left by a process that died: stop
        its playbook if it still runs, then re-queue its jobs (deploy.yml reads the hosts and
        converges, so running again loses and duplicates nothing) or fail them after too many tries."""
        for run in self.store.find("runs", {"state": RUN_RUNNING, "inventory": self.inventory}):
            self._stop_leftover(run)
            self.store.update("runs", run["_id"], {"state": RUN_INTERRUPTED, "finished_at": time.time()})
            for job in self.store.find("jobs", {"run_id": run["_id"], "state": RUNNING}):
                self._requeue_or_fail(job, f"the API stopped during run {run['_id']}", count=True)
        self._sweep()

    def _stop_leftover(self, run: dict[str, Any]) -> None:
        """A run whose API process died may still have ansible-playbook and its workers running
        (they ignore the hangup): stop them before anything else touches the hosts."""
        owner = run.get("owner") or {}
        if not run.get("private_dir") or owner.get("host") != socket.gethostname():
            return
        stopped = stop_run_processes(Path(run["private_dir"]))
        if stopped:
            log.warning("stopped %d leftover process(es) of interrupted run %s", len(stopped), run["_id"])
        shutil.rmtree(run["private_dir"], ignore_errors=True)

    def _requeue_or_fail(self, job: dict[str, Any], why: str, count: bool) -> None:
        attempts = job.get("attempts", 0) + (1 if count else 0)
        if attempts < self.settings.job_max_attempts:
            detail = f"re-queued: {why}; deploy.yml reads the hosts and converges (attempt {attempts + 1})"
            self.store.update(
                "jobs", job["_id"], {"state": QUEUED, "attempts": attempts, "status_detail": detail}
            )
        else:
            detail = f"failed: {why}, {attempts} times"
            self.store.update(
                "jobs",
                job["_id"],
                {"state": FAILED, "attempts": attempts, "finished_at": time.time(), "status_detail": detail},
            )
        for ref in job.get("instances", []):
            found = self.store.find(
                "instances", {"service_id": ref["service_id"], "instance_number": ref["instance_number"]}
            )
            for instance in found:
                changes: dict[str, Any] = {"status_detail": detail, "last_modified_timestamp": time.time()}
                if detail.startswith("failed") and instance.get("status") in st.IN_PROGRESS:
                    changes["status"] = st.FAILED
                self.store.update("instances", instance["_id"], changes)

    def _sweep(self) -> None:
        """Requests whose job never got queued (the process died in between) or whose removal could not
        be confirmed get a job; records of gone services are tidied."""
        active = {
            sid
            for job in self.store.find(
                "jobs", {"state": AnyOf((QUEUED, RUNNING)), "inventory": self.inventory}
            )
            for sid in job.get("services", [])
        }
        stale = time.time() - self.settings.job_retry_seconds
        pending = {
            instance["_id"]: instance
            for instance in [
                *self.store.find("instances", {"status": st.REQUESTED}),
                *self.store.find("instances", {"deleting": True}),
            ]
            # Fresh ones may still be on their way to a job (or their service to the store).
            if instance["service_id"] not in active and instance.get("last_modified_timestamp", 0) <= stale
        }
        services: dict[str, dict[str, Any] | None] = {}
        wanted: dict[str, list[dict[str, Any]]] = {}
        for instance in pending.values():
            service_id = instance["service_id"]
            if service_id not in services:
                services[service_id] = self.store.get("services", service_id)
            if services[service_id] is None:
                self.store.delete("instances", instance["_id"])  # its service is gone
                continue
            action = REMOVE if instance.get("deleting") else "deploy"
            wanted.setdefault(service_id, []).append(
                {"service_id": service_id, "instance_number": instance["instance_number"], "action": action}
            )
        for service_id, instances in wanted.items():
            owner = (services[service_id] or {}).get("userId", "")
            self.queue.enqueue(
                "reconcile",
                owner,
                [service_id],
                instances,
                detail="queued: an earlier request or removal was not carried out",
            )
        for service in self.store.find("services", {"deleting": True}):
            if service["_id"] not in active and not self.store.count(
                "instances", {"service_id": service["_id"]}
            ):
                self._drop_service(service)
        for app in self.store.find("applications", {"deleting": True}):
            if not self.store.count("services", {"applicationID": app["_id"]}):
                self.store.delete("applications", app["_id"])

    def _drop_service(self, service: dict[str, Any]) -> None:
        from grove_api.services.catalog import Catalog  # noqa: PLC0415 - the catalog owns the app's list

        self.store.delete("services", service["_id"])
        Catalog(self.store).remove_from_application(service["applicationID"], service["_id"])

    # -- a deploy run --------------------------------------------------------------------------
    def run_jobs(self, jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
        now = time.time()
        run = self.store.insert(
            "runs",
            {
                "inventory": self.inventory,
                "state": RUN_RUNNING,
                "jobs": [],
                "services": [],
                "started_at": now,
                "finished_at": None,
                "rc": None,
                "pid": None,
                "private_dir": "",
                "playbook": DEPLOY_PLAYBOOK,
                "owner": {"host": socket.gethostname(), "pid": os.getpid()},
            },
        )
        run_id = run["_id"]
        claimed = []
        for job in jobs:
            updated = self.store.update(
                "jobs",
                job["_id"],
                {
                    "state": RUNNING,
                    "run_id": run_id,
                    "started_at": now,
                    "status_detail": f"running: playbook run {run_id}",
                },
                expect={"state": QUEUED},
            )
            if updated is not None:
                claimed.append(updated)
        if not claimed:
            self.store.delete("runs", run_id)
            return None
        service_ids = sorted({sid for job in claimed for sid in job.get("services", [])})
        self.store.update("runs", run_id, {"jobs": [j["_id"] for j in claimed], "services": service_ids})
        plan = build_plan(self.store, service_ids)
        self._assign_jobs(plan, claimed)
        if plan.problems:
            return self._end(
                run_id, claimed, None, ["the stored services do not validate: " + "; ".join(plan.problems)]
            )
        if plan.empty:
            return self._end(run_id, claimed, 0, [])
        private_dir = self.settings.data_dir / "jobs" / run_id
        private_dir.mkdir(parents=True, mode=0o700)
        self.store.update("runs", run_id, {"private_dir": str(private_dir)})
        descriptor, instances = plan.write(private_dir)
        extravars: dict[str, Any] = {
            "descriptor": str(descriptor),
            "instances_file": str(instances),
            "grove_stop_timeout": self.settings.stop_timeout,
        }
        if plan.allow_privileged:
            extravars["grove_allow_privileged"] = True
        recorder = RunRecorder(self.store, run_id, plan, facts_module.worker_addresses(self.store))
        recorder.on_pid = lambda pid: self.store.update("runs", run_id, {"pid": pid})
        try:
            result = self.executor.run(
                RunRequest(
                    playbook=self.settings.playbooks / DEPLOY_PLAYBOOK,
                    inventory=Path(self.inventory),
                    private_dir=private_dir,
                    extravars=extravars,
                    event_handler=recorder,
                    cancel=self._stopping.is_set,
                )
            )
        finally:
            self._clean(private_dir)
        if result.status == "canceled" and self.stopping:
            self.store.update("runs", run_id, {"state": RUN_INTERRUPTED, "finished_at": time.time()})
            for job in claimed:
                self._requeue_or_fail(job, "the API stopped during the run", count=False)
            return self.store.get("runs", run_id)
        problems = recorder.finish(result.rc, result.error)
        if result.rc not in (0, None) and not problems:
            problems = [f"deploy.yml failed (rc={result.rc})"]
        self._drop_removed_services(plan)
        facts_module.update_workers(self.store, recorder.nodes, recorder.unreachable, time.time())
        return self._end(run_id, claimed, result.rc, problems)

    def _assign_jobs(self, plan: Any, jobs: list[dict[str, Any]]) -> None:
        """Each covered instance names the job that changes it now (GET /api/jobs/{id})."""
        fqn_of = {service["_id"]: fqn for fqn, service in plan.services.items()}
        for job in jobs:
            for ref in job.get("instances", []):
                record = plan.records.get((fqn_of.get(ref["service_id"]), ref["instance_number"]))
                if record is not None:
                    record["job_id"] = job["_id"]
                    self.store.update("instances", record["_id"], {"job_id": job["_id"]})

    def _drop_removed_services(self, plan: Any) -> None:
        apps = set()
        for service in plan.services.values():
            if service.get("deleting") and not self.store.count("instances", {"service_id": service["_id"]}):
                self._drop_service(service)
                apps.add(service["applicationID"])
        for app_id in apps:
            app = self.store.get("applications", app_id)
            if app and app.get("deleting") and not self.store.count("services", {"applicationID": app_id}):
                self.store.delete("applications", app_id)

    def _end(
        self, run_id: str, jobs: list[dict[str, Any]], rc: int | None, problems: list[str]
    ) -> dict | None:
        now = time.time()
        state = SUCCEEDED if not problems else FAILED
        detail = "done" if not problems else "failed: " + "; ".join(problems)[:4000]
        for job in jobs:
            attempts = job.get("attempts", 0)
            said = f"{detail} (re-queued after {attempts} interrupted run(s))" if attempts else detail
            self.store.update("jobs", job["_id"], {"state": state, "finished_at": now, "status_detail": said})
        return self.store.update(
            "runs", run_id, {"state": RUN_FINISHED, "finished_at": now, "rc": rc, "detail": detail}
        )

    def _clean(self, private_dir: Path) -> None:
        # The descriptor holds the services' environment (secrets): it never outlives the run.
        for name in ("descriptor.json",):
            with contextlib.suppress(FileNotFoundError):
                (private_dir / name).unlink()
        if not self.settings.keep_job_dirs:
            shutil.rmtree(private_dir, ignore_errors=True)

    # -- periodic chores (their last run is stamped in the store, shared by every API process) ---
    def _due(self, key: str, interval: float) -> bool:
        record = self.store.get("settings", key)
        return record is None or time.time() - record.get("at", 0) >= interval

    def _stamp(self, key: str, now: float) -> None:
        if self.store.update("settings", key, {"at": now}) is None:
            with contextlib.suppress(Exception):
                self.store.insert("settings", {"_id": key, "at": now})

    # -- retention -----------------------------------------------------------------------------
    def _prune_due(self) -> bool:
        return bool(self.settings.job_retention_days) and self._due(self.prune_key, PRUNE_INTERVAL_SECONDS)

    def prune_jobs(self, now: float | None = None) -> None:
        """Forget the jobs that finished more than job_retention_days ago (see retention.prune)."""
        now = time.time() if now is None else now
        self._stamp(self.prune_key, now)
        pruned = prune(self.store, self.inventory, now - self.settings.job_retention_days * 86400)
        if pruned.jobs or pruned.runs:
            log.info(
                "pruned %d job(s), %d run(s) and %d event(s) older than %g days",
                pruned.jobs,
                pruned.runs,
                pruned.events,
                self.settings.job_retention_days,
            )

    # -- cluster facts -------------------------------------------------------------------------
    def _facts_due(self) -> bool:
        return self._due(self.facts_key, self.settings.facts_interval_seconds)

    def refresh_facts(self) -> None:
        now = time.time()
        self._stamp(self.facts_key, now)
        private_dir = self.settings.data_dir / "jobs" / f"facts-{int(now * 1000)}"
        private_dir.mkdir(parents=True, mode=0o700)
        recorder = facts_module.FactsRecorder()
        try:
            result = self.executor.run(
                RunRequest(
                    playbook=self.settings.playbooks / FACTS_PLAYBOOK,
                    inventory=Path(self.inventory),
                    private_dir=private_dir,
                    extravars={},
                    event_handler=recorder,
                    cancel=self._stopping.is_set,
                )
            )
        finally:
            self._clean(private_dir)
        if result.status == "canceled":
            return
        facts_module.save_clusters(self.store, recorder, time.time())
        facts_module.refresh_instances(self.store, recorder, time.time())
