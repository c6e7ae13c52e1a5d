"""/api/application(s): registering descriptors, reading, updating, deleting; ownership and conflicts."""

from __future__ import annotations

import copy

import pytest
from conftest import seed

HOSTILE = "{{ lookup('pipe', 'touch /tmp/grove-pwned') }}; $(touch /tmp/grove-pwned) `id` \"' \\ {% raw %}"


def _post(api, descriptor, headers=None):
    return api.client.post("/api/application", json=descriptor, headers=headers or api.auth())


def _counts(api):
    store = api.grove.store
    return store.count("applications"), store.count("services"), store.count("instances")


def test_posting_the_seed_registers_the_app_and_its_services_and_answers_the_callers_apps(api):
    answer = _post(api, seed())
    assert answer.status_code == 200
    apps = answer.json()
    assert len(apps) == 1
    app = apps[0]
    assert set(app) == {
        "_id",
        "applicationID",
        "application_name",
        "application_namespace",
        "application_desc",
        "microservices",
        "userId",
    }
    assert app["_id"] == {"$oid": app["applicationID"]}
    assert (app["application_name"], app["application_namespace"], app["userId"]) == (
        "clientsrvr",
        "test",
        "Admin",
    )
    assert app["application_desc"] == "Simple demo with curl client and Nginx server"
    assert len(app["microservices"]) == 2
    services = api.client.get(f"/api/services/{app['applicationID']}", headers=api.auth()).json()
    assert [s["microserviceID"] for s in services] == app["microservices"]
    assert [s["job_name"] for s in services] == ["clientsrvr.test.curl.test", "clientsrvr.test.nginx.test"]
    assert all(s["instance_list"] == [] and s["status"] == "UNDEPLOYED" for s in services)


def test_post_answers_all_the_callers_applications_not_only_the_new_ones(api):
    _post(api, seed())
    other = seed()
    other["applications"][0]["application_name"] = "second"
    other["applications"][0].pop("application_desc")
    apps = _post(api, other).json()
    assert [a["application_name"] for a in apps] == ["clientsrvr", "second"]
    assert apps[1]["application_desc"] == ""


def test_a_bad_descriptor_answers_422_with_every_problem_and_stores_nothing(api):
    bad = seed()
    bad["applications"][0]["microservices"][1]["port"] = "6080:http"
    bad["applications"][0]["microservices"][0]["memory"] = "lots"
    bad["applications"][0]["microservices"][0]["microservice_name"] = "cu rl"
    bad["applications"].append(copy.deepcopy(bad["applications"][0]))
    answer = _post(api, bad)
    assert answer.status_code == 422
    body = answer.json()
    assert body["message"]
    fields = [e["field"] for e in body["errors"]]
    assert "applications[0].microservices[1].port" in fields
    assert "applications[0].microservices[0].memory" in fields
    assert "applications[0].microservices[0].microservice_name" in fields
    assert "applications[1]" in fields  # the duplicate application
    assert all(e["reason"] for e in body["errors"])
    assert _counts(api) == (0, 0, 0)


@pytest.mark.parametrize("version", [None, "v9", 2])
def test_a_missing_or_unknown_sla_version_is_a_422_not_a_500(api, version):
    descriptor = seed()
    if version is None:
        del descriptor["sla_version"]
    else:
        descriptor["sla_version"] = version
    answer = _post(api, descriptor)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "sla_version"


@pytest.mark.parametrize("body", [[], "text", 5, None, {"applications": "x"}])
def test_bodies_that_are_no_descriptor_answer_422(api, body):
    answer = api.client.post("/api/application", json=body, headers=api.auth())
    assert answer.status_code == 422
    assert answer.json()["errors"]
    assert _counts(api) == (0, 0, 0)


def test_malformed_json_answers_400(api):
    answer = api.client.post(
        "/api/application",
        content=b'{"sla_version": ',
        headers={**api.auth(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400


def test_the_same_name_and_namespace_answer_409_for_the_owner_and_for_another_user(api):
    _post(api, seed())
    again = _post(api, seed())
    assert again.status_code == 409
    assert "clientsrvr.test" in again.json()["message"]
    api.add_user("alice")
    theirs = _post(api, seed(), api.as_user("alice"))
    assert theirs.status_code == 409
    assert "another user" in theirs.json()["message"]
    assert "Admin" not in theirs.json()["message"]  # who owns it is not told
    assert _counts(api) == (1, 2, 0)


def test_an_rr_ip_taken_by_another_service_answers_409_and_free_ones_are_allocated(api):
    first = seed()
    first["applications"][0]["microservices"][1]["addresses"]["rr_ip"] = "10.30.5.5"
    _post(api, first)
    second = seed()
    second["applications"][0]["application_name"] = "other"
    second["applications"][0]["microservices"][1]["addresses"]["rr_ip"] = "10.30.5.5"
    answer = _post(api, second)
    assert answer.status_code == 409
    assert answer.json()["message"] == (
        "applications[0].microservices[1].addresses.rr_ip: 10.30.5.5 for other.test.nginx.test "
        "is already the address of clientsrvr.test.nginx.test"
    )
    services = api.client.get("/api/services", headers=api.auth()).json()
    addresses = [s["RR_ip"] for s in services]
    assert "10.30.5.5" in addresses and len(set(addresses)) == 2
    assert all(a.startswith("10.30.") for a in addresses)


def test_privileged_services_are_admin_only(api):
    descriptor = seed()
    descriptor["applications"][0]["microservices"][0]["privileged"] = True
    api.add_user("bob")
    denied = _post(api, descriptor, api.as_user("bob"))
    assert denied.status_code == 403
    assert "privileged" in denied.json()["message"]
    assert _counts(api) == (0, 0, 0)
    assert _post(api, descriptor).status_code == 200


def test_users_see_only_their_applications_and_admin_sees_all(api):
    api.add_user("carol")
    carol = api.as_user("carol")
    mine = seed()
    mine["applications"][0]["application_name"] = "carols"
    carol_apps = _post(api, mine, carol).json()
    _post(api, seed())
    admin_id = api.client.get("/api/user/Admin", headers=api.auth()).json()["_id"]["$oid"]
    carol_id = api.client.get("/api/user/carol", headers=carol).json()["_id"]["$oid"]
    assert [
        a["application_name"] for a in api.client.get("/api/applications", headers=api.auth()).json()
    ] == ["carols", "clientsrvr"]
    assert api.client.get("/api/applications", headers=carol).status_code == 403
    own = api.client.get(f"/api/applications/{carol_id}", headers=carol)
    assert [a["application_name"] for a in own.json()] == ["carols"]
    assert api.client.get(f"/api/applications/{admin_id}", headers=carol).status_code == 404
    assert [
        a["application_name"]
        for a in api.client.get(f"/api/applications/{carol_id}", headers=api.auth()).json()
    ] == ["carols"]
    admins_app = api.client.get("/api/applications", headers=api.auth()).json()[1]["applicationID"]
    assert api.client.get(f"/api/application/{admins_app}", headers=carol).status_code == 404
    assert api.client.delete(f"/api/application/{admins_app}", headers=carol).status_code == 404
    assert (
        api.client.put(
            f"/api/application/{admins_app}", headers=carol, json={"application_desc": "mine now"}
        ).status_code
        == 404
    )
    assert api.client.get(f"/api/services/{admins_app}", headers=carol).status_code == 404
    theirs = api.client.get(f"/api/application/{carol_apps[0]['applicationID']}", headers=api.auth())
    assert theirs.status_code == 200 and theirs.json()["userId"] == "carol"


def test_get_application_answers_the_object_not_null(api):
    app = _post(api, seed()).json()[0]
    answer = api.client.get(f"/api/application/{app['applicationID']}/", headers=api.auth())
    assert answer.status_code == 200
    assert answer.json() == app
    assert api.client.get(f"/api/application/{'0' * 24}", headers=api.auth()).status_code == 404
    assert api.client.get("/api/application/not-an-id", headers=api.auth()).status_code == 404


def test_put_application_updates_description_and_name_and_validates(api):
    app = _post(api, seed()).json()[0]
    app_id = app["applicationID"]
    answer = api.client.put(
        f"/api/application/{app_id}",
        headers=api.auth(),
        json={"application_desc": "new words", "application_name": "renamed"},
    )
    assert answer.status_code == 200 and answer.json()["message"]
    now = api.client.get(f"/api/application/{app_id}", headers=api.auth()).json()
    assert (now["application_name"], now["application_desc"]) == ("renamed", "new words")
    services = api.client.get(f"/api/services/{app_id}", headers=api.auth()).json()
    assert services[0]["job_name"] == "renamed.test.curl.test" and services[0]["app_name"] == "renamed"
    bad = api.client.put(
        f"/api/application/{app_id}", headers=api.auth(), json={"application_name": "no-dashes!"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "application_name"
    wrong_type = api.client.put(
        f"/api/application/{app_id}", headers=api.auth(), json={"application_desc": 5}
    )
    assert wrong_type.status_code == 422
    listed = api.client.put(f"/api/application/{app_id}", headers=api.auth(), json={"microservices": []})
    assert listed.status_code == 422
    other = seed()
    _post(api, other)
    taken = api.client.put(
        f"/api/application/{app_id}", headers=api.auth(), json={"application_name": "clientsrvr"}
    )
    assert taken.status_code == 409


def test_deleting_an_application_without_instances_removes_it_at_once(api):
    app = _post(api, seed()).json()[0]
    answer = api.client.delete(f"/api/application/{app['applicationID']}", headers=api.auth())
    assert answer.status_code == 200
    assert answer.json()["job_id"] == ""
    assert _counts(api) == (0, 0, 0)
    assert _post(api, seed()).status_code == 200  # the name is free again


def test_hostile_strings_are_stored_and_answered_verbatim(api):
    descriptor = seed()
    service = descriptor["applications"][0]["microservices"][0]
    service["cmd"] = ["sh", "-c", HOSTILE]
    service["environment"] = [f"SECRET={HOSTILE}"]
    descriptor["applications"][0]["application_desc"] = HOSTILE
    app = _post(api, descriptor).json()[0]
    assert app["application_desc"] == HOSTILE
    stored = api.client.get(f"/api/service/{app['microservices'][0]}", headers=api.auth()).json()
    assert stored["cmd"] == ["sh", "-c", HOSTILE]
    assert stored["environment"] == [f"SECRET={HOSTILE}"]


def test_an_allocated_rr_ip_is_the_one_deploy_yml_derives_and_skips_taken_ones(api):
    # The playbook path gives a service without rr_ip an address from a hash of its name: the API
    # gives the same one, so its services keep their address whichever way they are deployed, and
    # another store (a second API, a playbook run) picks the same address only for the same name.
    from ansible_collections.grove.edge.plugins.module_utils._descriptor import (  # noqa: PLC0415
        RR_IP_NETWORK,
    )
    from ansible_collections.grove.edge.plugins.module_utils._service_address import (  # noqa: PLC0415
        hashed_address,
    )

    def derived(name: str, taken=frozenset()) -> str:
        return str(hashed_address(name, taken, RR_IP_NETWORK))

    other_nginx = "other.test.nginx.test"
    first = seed()
    # The first application's nginx holds the address other.test.nginx.test's hash points at.
    first["applications"][0]["microservices"][1]["addresses"]["rr_ip"] = derived(other_nginx)
    _post(api, first)
    second = seed()
    second["applications"][0]["application_name"] = "other"
    second["applications"][0]["microservices"][1]["addresses"]["rr_ip"] = ""
    assert _post(api, second).status_code == 200
    by_name = {s["job_name"]: s["RR_ip"] for s in api.client.get("/api/services", headers=api.auth()).json()}
    assert by_name["clientsrvr.test.curl.test"] == derived("clientsrvr.test.curl.test")
    assert by_name["other.test.curl.test"] == derived("other.test.curl.test")
    # Its hash lands on a taken address: the next free one, as deploy.yml probes.
    taken = {hashed_address(other_nginx, frozenset(), RR_IP_NETWORK)}
    assert by_name[other_nginx] == derived(other_nginx, taken) != derived(other_nginx)


def test_the_lists_answer_exactly_what_the_validated_model_would(api):
    # The list routes skip FastAPI's response validation (grove_api.http.json_answer): their answer
    # must be ApplicationOut's wire form item by item, the form GET /api/application/{id} validates.
    from grove_api.models.oakestra import ApplicationOut  # noqa: PLC0415
    from pydantic import TypeAdapter  # noqa: PLC0415

    hostile = seed()
    hostile["applications"][0]["application_desc"] = "{{ lookup('pipe','id') }} \u00e9 \"q\" \\"
    _post(api, hostile)
    other = seed()
    other["applications"][0]["application_name"] = "second"
    _post(api, other)
    admin_id = api.client.get("/api/user/Admin", headers=api.auth()).json()["_id"]["$oid"]
    model = TypeAdapter(list[ApplicationOut])
    for path in ("/api/applications", f"/api/applications/{admin_id}", f"/api/applications/{admin_id}/"):
        answer = api.client.get(path, headers=api.auth())
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        listed = answer.json()
        assert len(listed) == 2
        assert listed == model.dump_python(model.validate_python(listed), by_alias=True, mode="json")
        for item in listed:
            one = api.client.get(f"/api/application/{item['applicationID']}", headers=api.auth())
            assert one.json() == item
