"""The job runner with the deploy playbook simulated (deploy_simulator.py): statuses from events,
batching, removals, recovery after a crash, one runner per inventory. The real playbook runs in
tests/test_api_live.py."""

from __future__ import annotations

import json
import os
import stat
import threading
import time

from conftest import seed
from grove_api.jobs.runner import JobRunner, try_lock


def _app(api, descriptor=None):
    answer = api.client.post("/api/application", json=descriptor or seed(), headers=api.auth())
    assert answer.status_code == 200, answer.text
    return answer.json()[-1]


def _service(api, service_id):
    return api.client.get(f"/api/service/{service_id}", headers=api.auth()).json()


def _job(api, job_id):
    return api.client.get(f"/api/jobs/{job_id}", headers=api.auth()).json()


def test_a_requested_instance_goes_through_oakestras_statuses_to_running(sim_api):
    api = sim_api
    app = _app(api)
    nginx = app["microservices"][1]
    seen = []

    def probe(event, data):
        found = api.grove.store.find("instances", {"service_id": nginx})
        if found and (not seen or seen[-1] != found[0]["status"]):
            seen.append(found[0]["status"])

    api.simulator.probe = probe
    job_id = api.client.post(f"/api/service/{nginx}/instance", headers=api.auth()).json()["job_id"]
    assert api.grove.runner.tick() is True
    assert seen == ["REQUESTED", "NODE_SCHEDULED", "CREATING", "RUNNING"]
    service = _service(api, nginx)
    assert service["status"] == "RUNNING"
    instance = service["instance_list"][0]
    assert instance["status"] == "RUNNING"
    # The cluster and the worker are chosen in one call: the history keeps both of Oakestra's steps.
    assert [step["status"] for step in instance["status_history"]] == [
        "REQUESTED",
        "CLUSTER_SCHEDULED",
        "NODE_SCHEDULED",
        "CREATING",
        "RUNNING",
    ]
    assert instance["cluster_id"] == "cluster1" and instance["worker_id"] in ("c1w1", "c1w2")
    assert instance["host_port"] == 6080 and instance["address"].startswith("10.18.")
    assert "running on cluster1/" in instance["status_detail"]
    job = _job(api, job_id)
    assert job["state"] == "succeeded" and job["status_detail"] == "done"
    assert job["instances"] == [
        {
            "service_id": nginx,
            "job_name": "clientsrvr.test.nginx.test",
            "instance_number": 0,
            "action": "deploy",
            "status": "RUNNING",
            "status_detail": instance["status_detail"],
        }
    ]
    tasks = {(e["task"], e["host"], e["result"]) for e in job["events"]}
    assert ("Schedule", "localhost", "ok") in tasks
    assert ("Start each instance placed on this worker", instance["worker_id"], "changed") in tasks
    assert any(
        e["event"] == "runner_item_on_ok" and e["item"] == "clientsrvr.test.nginx.test.instance.0"
        for e in job["events"]
    )
    assert job["run"]["jobs"] == 1 and job["run"]["services"] == ["clientsrvr.test.nginx.test"]


def test_the_job_files_hold_the_stored_services_verbatim_readable_by_root_only(sim_api, tmp_path):
    api = sim_api
    hostile = "{{ lookup('pipe','touch /tmp/grove-marker') }} $(id)"
    descriptor = seed()
    descriptor["applications"][0]["microservices"][0]["cmd"] = ["sh", "-c", hostile]
    descriptor["applications"][0]["microservices"][0]["environment"] = [f"TOKEN={hostile}"]
    app = _app(api, descriptor)
    modes = []
    api.simulator.probe = lambda event, data: (
        modes.append(stat.S_IMODE(os.stat(api.simulator.runs[-1].extravars["descriptor"]).st_mode))
        if not modes
        else None
    )
    api.client.post(f"/api/service/{app['microservices'][0]}/instance", headers=api.auth())
    api.grove.runner.tick()
    written, wanted = api.simulator.files[-1]
    service = written["applications"][0]["microservices"][0]
    assert service["cmd"] == ["sh", "-c", hostile] and service["environment"] == [f"TOKEN={hostile}"]
    assert service["microserviceID"] == app["microservices"][0]
    # As posted, plus the address the API allocated (the workers route what the API shows).
    assert service["addresses"] == {"rr_ip": _service(api, app["microservices"][0])["RR_ip"]}
    assert wanted == {"clientsrvr.test.curl.test": [0]}
    assert modes == [0o600]
    request = api.simulator.runs[-1]
    # Extra vars carry only the API's own paths and numbers, never a value from a request.
    assert set(request.extravars) == {"descriptor", "instances_file", "grove_stop_timeout"}
    assert hostile not in json.dumps(request.extravars)
    assert not request.private_dir.exists()  # removed with the descriptor (it holds secrets)
    assert api.simulator.hosts[_service(api, app["microservices"][0])["instance_list"][0]["worker_id"]][
        ("clientsrvr.test.curl.test", 0)
    ]["env"] == {"TOKEN": hostile}


def test_twenty_requests_for_a_service_that_fits_ten_make_one_run_ten_running_ten_with_a_reason(sim_api):
    api = sim_api
    descriptor = seed()
    service = descriptor["applications"][0]["microservices"][0]
    service["vcpus"] = 0.4  # two workers of 2 vcpus: 5 each
    service["port"] = ""  # a host port would allow one per worker
    service["memory"] = 10
    service_id = _app(api, descriptor)["microservices"][0]
    jobs = [
        api.client.post(f"/api/service/{service_id}/instance", headers=api.auth()).json()["job_id"]
        for _ in range(20)
    ]
    api.grove.runner.tick()
    assert len(api.simulator.runs) == 1
    instances = _service(api, service_id)["instance_list"]
    statuses = [i["status"] for i in instances]
    assert len(statuses) == 20, statuses
    assert statuses.count("RUNNING") == 10, [(i["status"], i["status_detail"]) for i in instances]
    # The cluster's aggregate is used up first: Oakestra's cluster-level capacity status.
    assert statuses.count("NoActiveClusterWithCapacity") == 10, statuses
    for instance in instances:
        if instance["status"] != "RUNNING":
            assert "needs 0.4 vcpus, 0 free" in instance["status_detail"]
    per_worker = {}
    for worker, running in api.simulator.hosts.items():
        per_worker[worker] = len(running)
    assert per_worker == {"c1w1": 5, "c1w2": 5}
    assert {_job(api, j)["run"]["run_id"] for j in jobs} == {_job(api, jobs[0])["run"]["run_id"]}
    assert _job(api, jobs[0])["run"]["jobs"] == 20
    assert _service(api, service_id)["status"] == "NoActiveClusterWithCapacity"


def test_requests_arriving_during_a_run_are_batched_into_the_next_one(sim_api):
    api = sim_api
    service_id = _app(api)["microservices"][0]
    api.client.post(f"/api/service/{service_id}/instance", headers=api.auth())
    api.simulator.gate = threading.Event()
    runner = threading.Thread(target=api.grove.runner.tick)
    runner.start()
    assert api.simulator.entered.wait(10)
    for _ in range(8):
        assert api.client.post(f"/api/service/{service_id}/instance", headers=api.auth()).status_code == 200
    # A second runner (another worker process) finds the lock taken and runs nothing.
    other = JobRunner(api.grove.settings, api.grove.store, api.simulator)
    assert other.tick() is False
    api.simulator.gate.set()
    runner.join(10)
    api.simulator.gate = None
    assert api.grove.runner.tick() is True
    assert len(api.simulator.runs) == 2
    assert api.grove.store.count("jobs", {"state": "queued"}) == 0
    instances = _service(api, service_id)["instance_list"]
    assert len(instances) == 9
    # The seed's curl maps host port 9080: one per worker.
    assert [i["status"] for i in instances].count("RUNNING") == 2
    assert all(
        "host port 9080/tcp already in use" in i["status_detail"]
        for i in instances
        if i["status"] != "RUNNING"
    )


def test_removing_an_instance_a_service_and_an_application_cleans_hosts_then_records(sim_api):
    api = sim_api
    app = _app(api)
    curl, nginx = app["microservices"]
    for service in (curl, curl, nginx):
        api.client.post(f"/api/service/{service}/instance", headers=api.auth())
    api.grove.runner.tick()
    assert len(api.simulator.running()) == 3
    answer = api.client.delete(f"/api/service/{curl}/instance/0", headers=api.auth())
    assert answer.status_code == 200 and answer.json()["job_id"]
    pending = _service(api, curl)["instance_list"]
    assert [i["instance_number"] for i in pending] == [0, 1]  # the record stays until the host is clean
    assert "removal requested" in pending[0]["status_detail"]
    api.grove.runner.tick()
    assert ("clientsrvr.test.curl.test", 0) not in api.simulator.running()
    assert [i["instance_number"] for i in _service(api, curl)["instance_list"]] == [1]
    assert api.client.delete(f"/api/service/{curl}", headers=api.auth()).status_code == 200
    api.grove.runner.tick()
    assert api.client.get(f"/api/service/{curl}", headers=api.auth()).status_code == 404
    assert api.client.get(f"/api/application/{app['applicationID']}", headers=api.auth()).json()[
        "microservices"
    ] == [nginx]
    delete = api.client.delete(f"/api/application/{app['applicationID']}", headers=api.auth())
    assert delete.status_code == 200 and delete.json()["job_id"]
    assert api.client.post(f"/api/service/{nginx}/instance", headers=api.auth()).status_code == 409
    api.grove.runner.tick()
    assert api.simulator.running() == {}
    store = api.grove.store
    assert (store.count("applications"), store.count("services"), store.count("instances")) == (0, 0, 0)
    assert _job(api, delete.json()["job_id"])["state"] == "succeeded"


def test_a_removal_on_an_unreachable_worker_keeps_the_record_and_is_retried(sim_api):
    api = sim_api
    service = _app(api)["microservices"][0]
    api.client.post(f"/api/service/{service}/instance", headers=api.auth())
    api.grove.runner.tick()
    worker = _service(api, service)["instance_list"][0]["worker_id"]
    api.simulator.unreachable.add(worker)
    job = api.client.delete(f"/api/service/{service}/instance/0", headers=api.auth()).json()["job_id"]
    api.grove.runner.tick()
    instance = _service(api, service)["instance_list"][0]
    assert "removal not confirmed" in instance["status_detail"] and worker in instance["status_detail"]
    assert _job(api, job)["state"] == "failed"
    api.simulator.unreachable.clear()
    api.grove.store.update(
        "instances", api.grove.store.find("instances")[0]["_id"], {"last_modified_timestamp": 0}
    )
    api.grove.runner.tick()  # the sweep queues a reconcile job
    api.grove.runner.tick()
    assert _service(api, service)["instance_list"] == []
    assert api.simulator.running() == {}


def test_a_start_failure_shows_failed_with_containerds_stderr(sim_api):
    api = sim_api
    service = _app(api)["microservices"][1]
    api.simulator.fail_start[("clientsrvr.test.nginx.test", 0)] = "ctr: failed to mount rootfs: no space left"
    job = api.client.post(f"/api/service/{service}/instance", headers=api.auth()).json()["job_id"]
    api.grove.runner.tick()
    instance = _service(api, service)["instance_list"][0]
    assert instance["status"] == "FAILED"
    assert "no space left" in instance["status_detail"]
    assert _job(api, job)["state"] == "failed"


def test_an_interrupted_run_is_requeued_then_failed_after_too_many_attempts(sim_api):
    api = sim_api
    store = api.grove.store
    service = _app(api)["microservices"][0]
    job = api.client.post(f"/api/service/{service}/instance", headers=api.auth()).json()["job_id"]
    inventory = str(api.grove.settings.inventory)

    def crash():
        run = store.insert(
            "runs",
            {
                "inventory": inventory,
                "state": "running",
                "jobs": [job],
                "services": [service],
                "pid": None,
                "private_dir": "",
                "owner": {"host": "x", "pid": 1},
            },
        )
        store.update("jobs", job, {"state": "running", "run_id": run["_id"]})

    crash()
    api.grove.runner.recover()
    record = _job(api, job)
    assert record["state"] == "queued" and record["attempts"] == 1
    assert record["status_detail"].startswith("re-queued: the API stopped during run")
    crash()
    api.grove.runner.recover()
    record = _job(api, job)
    assert record["state"] == "failed" and "2 times" in record["status_detail"]
    instance = _service(api, service)["instance_list"][0]
    assert instance["status"] == "FAILED" and instance["status_detail"].startswith("failed: the API stopped")
    assert store.count("instances") == 1 and store.count("jobs") == 1


def test_a_request_whose_job_was_lost_gets_one_from_the_sweep(sim_api):
    api = sim_api
    store = api.grove.store
    service = _app(api)["microservices"][0]
    api.client.post(f"/api/service/{service}/instance", headers=api.auth())
    for job in store.find("jobs"):
        store.delete("jobs", job["_id"])  # as if the process died between the record and its job
    api.grove.runner.tick()
    assert store.count("jobs") == 0  # too recent: it may still be on its way
    store.update("instances", store.find("instances")[0]["_id"], {"last_modified_timestamp": 0})
    api.grove.runner.tick()
    api.grove.runner.tick()
    assert [j["kind"] for j in store.find("jobs")] == ["reconcile"]
    assert _service(api, service)["instance_list"][0]["status"] == "RUNNING"


def test_stopping_the_api_during_a_run_requeues_its_jobs_without_counting_an_attempt(sim_api):
    api = sim_api
    service = _app(api)["microservices"][0]
    job = api.client.post(f"/api/service/{service}/instance", headers=api.auth()).json()["job_id"]
    runner = api.grove.runner

    class Cancelled:
        def run(self, request):
            runner._stopping.set()
            request.event_handler({"event": "playbook_on_start", "pid": 1, "event_data": {}})
            from grove_api.jobs.executor import RunResult  # noqa: PLC0415

            return RunResult(254, "canceled")

    runner.executor = Cancelled()
    runner.tick()
    record = _job(api, job)
    assert record["state"] == "queued" and record["attempts"] == 0
    assert record["run"]["state"] == "interrupted"


def test_admins_privileged_services_pass_the_flag(sim_api):
    api = sim_api
    descriptor = seed()
    descriptor["applications"][0]["microservices"][0]["privileged"] = True
    service = _app(api, descriptor)["microservices"][0]
    api.client.post(f"/api/service/{service}/instance", headers=api.auth())
    api.grove.runner.tick()
    assert api.simulator.runs[-1].extravars["grove_allow_privileged"] is True


def test_facts_refresh_fills_the_clusters_with_oakestras_fields(sim_api):
    api = sim_api
    api.grove.runner.refresh_facts()
    clusters = api.client.get("/api/clusters/", headers=api.auth()).json()
    assert len(clusters) == 1
    cluster = clusters[0]
    types = {
        "_id": str,
        "cluster_name": str,
        "cluster_location": str,
        "active": bool,
        "active_nodes": int,
        "aggregated_cpu_percent": float,
        "memory_in_mb": int,
        "total_cpu_cores": int,
        "total_gpu_cores": int,
        "virtualization": list,
        "supported_addons": list,
        "ip": str,
        "port": int,
        "last_modified_timestamp": float,
    }
    for name, kind in types.items():
        assert isinstance(cluster[name], kind), name
    assert (cluster["_id"], cluster["cluster_name"], cluster["cluster_location"]) == (
        "cluster1",
        "cluster1",
        "lab",
    )
    assert cluster["active"] is True and cluster["active_nodes"] == 2
    assert cluster["total_cpu_cores"] == 4 and cluster["memory_in_mb"] == 8000
    assert cluster["virtualization"] == ["container"]
    assert [w["name"] for w in cluster["workers"]] == ["c1w1", "c1w2"]
    assert api.client.get("/api/clusters/active", headers=api.auth()).json() == clusters
    api.simulator.unreachable.update({"c1w1", "c1w2"})
    api.grove.runner.refresh_facts()
    assert api.client.get("/api/clusters/active", headers=api.auth()).json() == []
    assert api.client.get("/api/clusters", headers=api.auth()).json()[0]["active"] is False


def test_facts_refresh_marks_instances_that_vanished_from_their_worker_dead(sim_api):
    api = sim_api
    service = _app(api)["microservices"][0]
    api.client.post(f"/api/service/{service}/instance", headers=api.auth())
    api.grove.runner.tick()
    api.grove.runner.refresh_facts()
    assert _service(api, service)["instance_list"][0]["status"] == "RUNNING"
    for instances in api.simulator.hosts.values():
        instances.clear()
    api.grove.runner.refresh_facts()
    instance = _service(api, service)["instance_list"][0]
    assert instance["status"] == "DEAD" and "no longer on" in instance["status_detail"]


def test_jobs_are_visible_to_their_owner_and_admin_only(sim_api):
    api = sim_api
    api.add_user("gil")
    descriptor = seed()
    descriptor["applications"][0]["application_name"] = "gils"
    gil = api.as_user("gil")
    app = api.client.post("/api/application", json=descriptor, headers=gil).json()[0]
    job = api.client.post(f"/api/service/{app['microservices'][0]}/instance", headers=gil).json()["job_id"]
    assert api.client.get(f"/api/jobs/{job}", headers=gil).status_code == 200
    assert api.client.get(f"/api/jobs/{job}", headers=api.auth()).status_code == 200
    api.add_user("hal")
    assert api.client.get(f"/api/jobs/{job}", headers=api.as_user("hal")).status_code == 404
    assert [j["job_id"] for j in api.client.get("/api/jobs", headers=gil).json()] == [job]
    assert api.client.get("/api/jobs", headers=api.as_user("hal")).json() == []


def test_the_runner_thread_picks_up_requests_without_a_tick_from_the_test(tmp_path, simulator):
    from conftest import Api, make_settings  # noqa: PLC0415
    from fastapi.testclient import TestClient  # noqa: PLC0415
    from grove_api.main import create_app  # noqa: PLC0415

    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {}\n")
    settings = make_settings(tmp_path, inventory=inventory, run_jobs=True, job_batch_seconds=0.05)
    app = create_app(settings, executor=simulator)
    with TestClient(app) as client:
        api = Api(client, app.state.grove)
        service = _app(api)["microservices"][0]
        api.client.post(f"/api/service/{service}/instance", headers=api.auth())
        deadline = time.monotonic() + 20
        while _service(api, service)["instance_list"][0]["status"] != "RUNNING":
            assert time.monotonic() < deadline, _service(api, service)
            time.sleep(0.05)
    assert not app.state.grove.runner._thread.is_alive()


def test_the_lock_is_exclusive_across_open_files(tmp_path):
    path = tmp_path / "locks" / "runner.lock"
    with try_lock(path) as first:
        assert first is True
        with try_lock(path) as second:
            assert second is False
    with try_lock(path) as again:
        assert again is True


def test_a_requeued_job_says_so_when_it_is_done(sim_api):
    api = sim_api
    store = api.grove.store
    service = _app(api)["microservices"][0]
    job = api.client.post(f"/api/service/{service}/instance", headers=api.auth()).json()["job_id"]
    run = store.insert(
        "runs",
        {
            "inventory": str(api.grove.settings.inventory),
            "state": "running",
            "jobs": [job],
            "services": [service],
            "pid": None,
            "private_dir": "",
            "owner": {},
        },
    )
    store.update("jobs", job, {"state": "running", "run_id": run["_id"]})
    api.grove.runner.tick()
    record = _job(api, job)
    assert record["state"] == "succeeded"
    assert record["status_detail"] == "done (re-queued after 1 interrupted run(s))"


class _FakeClock:
    """time.time for the runner, moved on only by the runner's own waits."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.waited: list[float] = []

    def time(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.now += seconds
        return False


def _batching_runner(tmp_path, monkeypatch, arrivals):
    """A runner whose queue gets a job at each of `arrivals` (seconds), on a fake clock."""
    from conftest import make_settings  # noqa: PLC0415
    from grove_api.jobs import runner as runner_module  # noqa: PLC0415
    from grove_api.store.sqlite import SQLiteStore  # noqa: PLC0415

    settings = make_settings(tmp_path, job_batch_seconds=2.0, job_batch_quiet_seconds=0.2)
    runner = JobRunner(settings, SQLiteStore(tmp_path / "grove.db"))
    clock = _FakeClock(arrivals[0])
    monkeypatch.setattr(runner_module, "time", clock)
    monkeypatch.setattr(runner, "_stopping", clock)
    monkeypatch.setattr(runner, "_queued", lambda: [{"created_at": at} for at in arrivals if at <= clock.now])
    return runner, clock


def test_a_lone_request_starts_after_the_quiet_period_not_the_whole_window(tmp_path, monkeypatch):
    runner, clock = _batching_runner(tmp_path, monkeypatch, [100.0])
    assert runner._batch(runner._queued()) == [{"created_at": 100.0}]
    assert clock.now == 100.2


def test_a_burst_is_taken_whole_while_requests_keep_coming(tmp_path, monkeypatch):
    arrivals = [100.0 + 0.1 * n for n in range(10)]  # one every 0.1 s for 0.9 s
    runner, clock = _batching_runner(tmp_path, monkeypatch, arrivals)
    assert len(runner._batch(runner._queued())) == 10
    assert round(clock.now, 6) == 101.1  # 0.2 s after the last one


def test_a_burst_longer_than_the_window_starts_at_its_end(tmp_path, monkeypatch):
    arrivals = [100.0 + 0.1 * n for n in range(40)]  # 4 s of requests; the window is 2 s
    runner, clock = _batching_runner(tmp_path, monkeypatch, arrivals)
    taken = runner._batch(runner._queued())
    assert round(clock.now, 6) == 102.0
    assert len(taken) == 21  # those that arrived within the window; the rest go to the next run


DAY = 86400


def test_finished_jobs_are_forgotten_after_the_retention_but_each_instances_last_job_stays(sim_api):
    api = sim_api
    store = api.grove.store
    runner = api.grove.runner
    curl = _app(api)["microservices"][0]
    for _ in range(2):
        api.client.post(f"/api/service/{curl}/instance", headers=api.auth())
        runner.tick()
    api.client.delete(f"/api/service/{curl}/instance/0", headers=api.auth())
    runner.tick()
    queued = api.client.post(f"/api/service/{curl}/instance", headers=api.auth()).json()["job_id"]
    jobs = {job["_id"]: job for job in store.find("jobs")}
    assert len(jobs) == 4 and store.count("job_events") > 0
    shown = {doc.get("job_id") for kind in ("instances", "services") for doc in store.find(kind)} - {None}
    assert queued in shown and len(shown - {queued}) == 1  # instance 1's; instance 0 is gone

    runner.prune_jobs(now=time.time() + 13 * DAY)
    assert len(store.find("jobs")) == 4  # nothing is old enough yet

    runner.prune_jobs(now=time.time() + 15 * DAY)
    left = {job["_id"] for job in store.find("jobs")}
    assert left == shown
    for job_id in set(jobs) - left:
        assert api.client.get(f"/api/jobs/{job_id}", headers=api.auth()).status_code == 404
    runs = {run["_id"] for run in store.find("runs")}
    assert runs == {jobs[job_id]["run_id"] for job_id in left if jobs[job_id]["run_id"]}
    assert {event["run_id"] for event in store.find("job_events")} == runs
    for job_id in shown - {queued}:
        kept = _job(api, job_id)
        assert kept["state"] == "succeeded" and kept["events"], kept
    # The queued request still runs.
    runner.tick()
    assert _job(api, queued)["state"] == "succeeded"


def test_the_runner_prunes_on_its_own_unless_retention_is_off(tmp_path, simulator):
    from conftest import make_settings  # noqa: PLC0415
    from grove_api.store.sqlite import SQLiteStore  # noqa: PLC0415

    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {}\n")
    store = SQLiteStore(tmp_path / "grove.db")
    old = time.time() - 30 * DAY
    store.insert(
        "jobs", {"state": "succeeded", "inventory": str(inventory), "finished_at": old, "run_id": ""}
    )
    off = JobRunner(make_settings(tmp_path, inventory=inventory, job_retention_days=0), store, simulator)
    off.tick()
    off.tick()
    assert store.count("jobs") == 1
    on = JobRunner(make_settings(tmp_path, inventory=inventory), store, simulator)
    on.tick()  # refreshes the facts first
    on.tick()
    assert store.count("jobs") == 0
