"""/api/service(s) and instance requests: shapes, ownership, numbering, updates."""

from __future__ import annotations

from conftest import seed

INSTANCE_FIELDS = {
    "instance_number": int,
    "status": str,
    "status_detail": str,
    "cluster_id": str,
    "cluster_location": str,
    "worker_id": str,
    "host_ip": str,
    "publicip": str,
    "host_port": int,
    "cpu_percent": str,
    "memory_percent": str,
    "disk": str,
    "logs": str,
    "cpu_history": list,
    "memory_history": list,
    "last_modified_timestamp": float,
}
OAKESTRA_STATUSES = {
    "REQUESTED",
    "CLUSTER_SCHEDULED",
    "NODE_SCHEDULED",
    "CREATING",
    "CREATED",
    "RUNNING",
    "FAILED",
    "DEAD",
    "COMPLETED",
    "UNDEPLOYED",
    "TargetClusterNotFound",
    "TargetClusterNotActive",
    "TargetClusterNoCapacity",
    "NoActiveClusterWithCapacity",
    "NO_WORKER_CAPACITY",
    "NO_QUALIFIED_WORKER_FOUND",
    "NO_NODE_FOUND",
}


def _app(api, headers=None, name="clientsrvr"):
    descriptor = seed()
    descriptor["applications"][0]["application_name"] = name
    answer = api.client.post("/api/application", json=descriptor, headers=headers or api.auth())
    assert answer.status_code == 200, answer.text
    return next(a for a in answer.json() if a["application_name"] == name)


def test_a_service_object_has_oakestras_fields_and_every_descriptor_field_verbatim(api):
    app = _app(api)
    nginx = api.client.get(f"/api/service/{app['microservices'][1]}", headers=api.auth()).json()
    raw = seed()["applications"][0]["microservices"][1]
    for key, value in raw.items():
        if key != "microserviceID":
            assert nginx[key] == value, key
    assert nginx["_id"] == {"$oid": nginx["microserviceID"]}
    assert nginx["applicationID"] == app["applicationID"]
    assert (
        nginx["job_name"],
        nginx["app_name"],
        nginx["app_ns"],
        nginx["service_name"],
        nginx["service_ns"],
    ) == ("clientsrvr.test.nginx.test", "clientsrvr", "test", "nginx", "test")
    assert nginx["image"] == nginx["code"] == "docker.io/library/nginx:latest"
    assert isinstance(nginx["port"], str) and nginx["RR_ip"].startswith("10.30.")
    assert nginx["status"] in OAKESTRA_STATUSES and nginx["status_detail"]


def test_instances_are_numbered_from_0_never_reused_and_answer_200_at_once(sim_api):
    api = sim_api
    service = _app(api)["microservices"][1]
    numbers = []
    for _ in range(3):
        answer = api.client.post(f"/api/service/{service}/instance", headers=api.auth())
        assert answer.status_code == 200
        assert answer.json()["message"] == "ok" and answer.json()["job_id"]
        numbers.append(answer.json()["instance_number"])
    assert numbers == [0, 1, 2]
    listed = api.client.get(f"/api/service/{service}", headers=api.auth()).json()["instance_list"]
    assert [(i["instance_number"], i["status"]) for i in listed] == [
        (0, "REQUESTED"),
        (1, "REQUESTED"),
        (2, "REQUESTED"),
    ]
    for instance in listed:
        for name, kind in INSTANCE_FIELDS.items():
            assert isinstance(instance[name], kind), name
    assert api.client.delete(f"/api/service/{service}/instance/1", headers=api.auth()).status_code == 200
    api.grove.runner.tick()
    again = api.client.post(f"/api/service/{service}/instance/", headers=api.auth()).json()
    assert again["instance_number"] == 3
    api.grove.runner.tick()
    listed = api.client.get(f"/api/service/{service}", headers=api.auth()).json()["instance_list"]
    assert [i["instance_number"] for i in listed] == [0, 2, 3]


def test_instance_requests_ignore_any_body(sim_api):
    service = _app(sim_api)["microservices"][0]
    answer = sim_api.client.post(
        f"/api/service/{service}/instance", headers=sim_api.auth(), content=b"{not json"
    )
    assert answer.status_code == 200


def test_other_users_services_answer_404_everywhere(api):
    api.add_user("dora")
    dora = api.as_user("dora")
    service = _app(api)["microservices"][0]
    assert api.client.get(f"/api/service/{service}", headers=dora).status_code == 404
    assert api.client.post(f"/api/service/{service}/instance", headers=dora).status_code == 404
    assert api.client.delete(f"/api/service/{service}/instance/0", headers=dora).status_code == 404
    assert api.client.delete(f"/api/service/{service}", headers=dora).status_code == 404
    assert api.client.put(f"/api/service/{service}", headers=dora, json={}).status_code == 404
    assert api.client.get("/api/services", headers=dora).json() == []
    assert api.grove.store.count("instances") == 0 and api.grove.store.count("jobs") == 0


def test_unknown_services_and_instances_answer_404(api):
    service = _app(api)["microservices"][0]
    assert api.client.get(f"/api/service/{'a' * 24}", headers=api.auth()).status_code == 404
    assert api.client.post(f"/api/service/{'a' * 24}/instance", headers=api.auth()).status_code == 404
    assert api.client.delete(f"/api/service/{service}/instance/7", headers=api.auth()).status_code == 404
    answer = api.client.delete(f"/api/service/{service}/instance/seven", headers=api.auth())
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "instance_number"


def test_post_service_adds_services_to_the_callers_application(api):
    app = _app(api)
    descriptor = seed()
    descriptor["applications"][0]["applicationID"] = app["applicationID"]
    extra = descriptor["applications"][0]["microservices"][1]
    extra["microservice_name"] = "web2"
    extra["port"] = "7080:80"
    descriptor["applications"][0]["microservices"] = [extra]
    answer = api.client.post("/api/service/", json=descriptor, headers=api.auth())
    assert answer.status_code == 200
    body = answer.json()
    assert (
        body["deployed_services"] == [{"service_name": "web2", "status": 200}]
        and body["failed_services"] == []
    )
    now = api.client.get(f"/api/application/{app['applicationID']}", headers=api.auth()).json()
    assert now["microservices"][-1] == body["job_id"] and len(now["microservices"]) == 3
    again = api.client.post("/api/service", json=descriptor, headers=api.auth())
    assert again.status_code == 409 and "web2" in again.json()["message"]


def test_post_service_refuses_bad_input_with_422_404_and_stores_nothing(api):
    app = _app(api)
    descriptor = seed()
    answer = api.client.post("/api/service", json=descriptor, headers=api.auth())
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "applications[0].applicationID"
    descriptor["applications"][0]["applicationID"] = "f" * 24
    assert api.client.post("/api/service", json=descriptor, headers=api.auth()).status_code == 404
    descriptor["applications"][0]["applicationID"] = app["applicationID"]
    descriptor["applications"][0]["microservices"][0]["vcpus"] = -2
    bad = api.client.post("/api/service", json=descriptor, headers=api.auth())
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "applications[0].microservices[0].vcpus", "reason": "must be a non-negative number, not -2"}
    ]
    api.add_user("eve")
    descriptor["applications"][0]["microservices"][0]["vcpus"] = 1
    assert api.client.post("/api/service", json=descriptor, headers=api.as_user("eve")).status_code == 404
    assert api.grove.store.count("services") == 2


def test_put_service_updates_the_spec_and_refuses_renames_and_bad_specs(api):
    service_id = _app(api)["microservices"][1]
    spec = api.client.get(f"/api/service/{service_id}", headers=api.auth()).json()
    new = {k: spec[k] for k in seed()["applications"][0]["microservices"][1]}
    new["memory"] = 200
    new["environment"] = ["GREETING=hello"]
    answer = api.client.put(f"/api/service/{service_id}", json=new, headers=api.auth())
    assert answer.status_code == 200 and answer.json()["job_id"] == ""
    now = api.client.get(f"/api/service/{service_id}", headers=api.auth()).json()
    assert now["memory"] == 200 and now["environment"] == ["GREETING=hello"]
    assert now["RR_ip"] == spec["RR_ip"]
    sla = {
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [
            {
                "application_name": "clientsrvr",
                "application_namespace": "test",
                "microservices": [dict(new, memory=300)],
            }
        ],
    }
    assert api.client.put(f"/api/service/{service_id}", json=sla, headers=api.auth()).status_code == 200
    assert api.client.get(f"/api/service/{service_id}", headers=api.auth()).json()["memory"] == 300
    renamed = api.client.put(
        f"/api/service/{service_id}", json=dict(new, microservice_name="other"), headers=api.auth()
    )
    assert renamed.status_code == 422 and renamed.json()["errors"][0]["field"] == "microservice_name"
    bad = api.client.put(f"/api/service/{service_id}", json=dict(new, port="99999"), headers=api.auth())
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "port"
    assert api.client.get(f"/api/service/{service_id}", headers=api.auth()).json()["memory"] == 300


def test_put_service_with_instances_queues_a_job_that_redeploys_them(sim_api):
    api = sim_api
    service_id = _app(api)["microservices"][0]
    api.client.post(f"/api/service/{service_id}/instance", headers=api.auth())
    api.grove.runner.tick()
    spec = {k: v for k, v in seed()["applications"][0]["microservices"][0].items()}
    spec["environment"] = ["MODE=new"]
    answer = api.client.put(f"/api/service/{service_id}", json=spec, headers=api.auth())
    assert answer.status_code == 200 and answer.json()["job_id"]
    api.grove.runner.tick()
    descriptor, wanted = api.simulator.files[-1]
    assert descriptor["applications"][0]["microservices"][0]["environment"] == ["MODE=new"]
    assert wanted == {"clientsrvr.test.curl.test": [0]}


def test_admin_lists_every_service_and_users_their_own(api):
    api.add_user("fay")
    _app(api, api.as_user("fay"), name="fays")
    _app(api)
    assert len(api.client.get("/api/services", headers=api.auth()).json()) == 4
    own = api.client.get("/api/services", headers=api.as_user("fay")).json()
    assert {s["app_name"] for s in own} == {"fays"}
