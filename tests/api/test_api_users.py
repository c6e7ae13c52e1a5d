"""Users, permissions and organizations: Admin manages, users see themselves, hashes never leave."""

from __future__ import annotations


def _no_secrets(body) -> None:
    text = str(body)
    assert "password" not in text and "$argon2" not in text


def test_register_creates_a_user_with_oakestras_shape_and_409_on_a_taken_name(api):
    user = api.add_user("alice", roles=["Application_Provider"])
    assert set(user) == {"_id", "name", "email", "created_at", "roles"}
    assert len(user["_id"]["$oid"]) == 24
    assert user["roles"] == ["Application_Provider"]
    _no_secrets(user)
    again = api.client.post(
        "/api/auth/register", headers=api.auth(), json={"name": "alice", "password": "other-pw", "roles": []}
    )
    assert again.status_code == 409 and "alice" in again.json()["message"]


def test_register_needs_admin_and_valid_fields_and_stores_nothing_when_refused(api):
    api.add_user("bob")
    denied = api.client.post(
        "/api/auth/register", headers=api.as_user("bob"), json={"name": "mallory", "password": "pw-pw-pw"}
    )
    assert denied.status_code == 403
    invalid = api.client.post(
        "/api/auth/register",
        headers=api.auth(),
        json={"name": "bad name!", "password": "x", "roles": ["Root", "Admin"]},
    )
    assert invalid.status_code == 422
    fields = {e["field"] for e in invalid.json()["errors"]}
    assert fields == {"name", "password", "roles[0]"}
    names = [u["name"] for u in api.client.get("/api/users", headers=api.auth()).json()]
    assert names == ["Admin", "bob"]


def test_users_list_and_organization_members_are_admin_only_and_without_hashes(api):
    api.add_user("carol")
    users = api.client.get("/api/users", headers=api.auth())
    assert users.status_code == 200
    _no_secrets(users.json())
    assert api.client.get("/api/users", headers=api.as_user("carol")).status_code == 403
    organization = api.client.get("/api/organization", headers=api.auth()).json()[0]
    assert organization["name"] == "root"
    members = api.client.get(f"/api/users/{organization['_id']['$oid']}", headers=api.auth())
    assert [u["name"] for u in members.json()] == ["Admin", "carol"]
    _no_secrets(members.json())
    assert api.client.get(f"/api/users/{'0' * 24}", headers=api.auth()).status_code == 404


def test_a_user_sees_only_themself_and_their_roles(api):
    api.add_user("dave", roles=["Application_Provider", "Infrastructure_Provider"])
    headers = api.as_user("dave")
    me = api.client.get("/api/user/dave", headers=headers)
    assert me.status_code == 200 and me.json()["name"] == "dave"
    _no_secrets(me.json())
    assert api.client.get("/api/user/Admin", headers=headers).status_code == 404
    assert api.client.get("/api/permission/dave", headers=headers).json() == {
        "roles": ["Application_Provider", "Infrastructure_Provider"]
    }
    assert api.client.get("/api/permission/Admin", headers=headers).status_code == 404
    assert api.client.get("/api/user/dave", headers=api.auth()).status_code == 200
    assert api.client.get("/api/user/nobody", headers=api.auth()).status_code == 404


def test_admin_puts_a_user_to_create_or_update_it(api):
    created = api.client.put(
        "/api/user/frank",
        headers=api.auth(),
        json={"password": "frank-pw", "email": "f@x", "roles": ["Application_Provider"]},
    )
    assert created.status_code == 200 and created.json()["email"] == "f@x"
    updated = api.client.put("/api/user/frank", headers=api.auth(), json={"email": "new@x"})
    assert updated.json()["email"] == "new@x" and updated.json()["roles"] == ["Application_Provider"]
    missing_password = api.client.put("/api/user/gina", headers=api.auth(), json={"email": "g@x"})
    assert missing_password.status_code == 422
    assert missing_password.json()["errors"][0]["field"] == "password"
    assert (
        api.client.put(
            "/api/user/frank", headers=api.as_user("frank", "frank-pw"), json={"roles": ["Admin"]}
        ).status_code
        == 403
    )
    demote = api.client.put("/api/user/Admin", headers=api.auth(), json={"roles": ["Application_Provider"]})
    assert demote.status_code == 422


def test_password_change_checks_the_old_password_and_only_for_oneself(api):
    api.add_user("hana", password="hana-pw")
    headers = api.as_user("hana", "hana-pw")
    wrong = api.client.post(
        "/api/user/hana", headers=headers, json={"oldPassword": "nope", "newPassword": "x-x-x-x"}
    )
    assert wrong.status_code == 403
    same = api.client.post(
        "/api/user/hana", headers=headers, json={"oldPassword": "hana-pw", "newPassword": "hana-pw"}
    )
    assert same.status_code == 422
    other = api.client.post(
        "/api/user/hana", headers=api.auth(), json={"oldPassword": "hana-pw", "newPassword": "y"}
    )
    assert other.status_code == 403
    missing = api.client.post("/api/user/hana", headers=headers, json={"oldPassword": "hana-pw"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "newPassword"


def test_deleting_users_admin_only_never_admin_itself(api):
    api.add_user("ivan")
    assert api.client.delete("/api/user/ivan", headers=api.as_user("ivan")).status_code == 403
    assert api.client.delete("/api/user/Admin", headers=api.auth()).status_code == 409
    assert api.client.delete("/api/user/ivan", headers=api.auth()).status_code == 200
    assert api.client.delete("/api/user/ivan", headers=api.auth()).status_code == 404
    organization = api.client.get("/api/organization", headers=api.auth()).json()[0]
    assert len(organization["member"]) == 1


def test_organizations_crud_with_members_validated(api):
    user = api.add_user("jane")
    user_id = user["_id"]["$oid"]
    created = api.client.post(
        "/api/organization",
        headers=api.auth(),
        json={"name": "edge1", "member": [{"user_id": user_id, "roles": ["Application_Provider"]}]},
    )
    assert created.status_code == 200
    org_id = created.json()["_id"]["$oid"]
    assert created.json()["member"] == [{"user_id": user_id, "roles": ["Application_Provider"]}]
    duplicate = api.client.post("/api/organization/", headers=api.auth(), json={"name": "edge1"})
    assert duplicate.status_code == 409
    invalid = api.client.post(
        "/api/organization",
        headers=api.auth(),
        json={"name": "x y", "member": [{"user_id": "f" * 24, "roles": ["Boss"]}]},
    )
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {
        "name",
        "member[0].user_id",
        "member[0].roles[0]",
    }
    renamed = api.client.put(f"/api/organization/{org_id}", headers=api.auth(), json={"name": "edge2"})
    assert renamed.json()["name"] == "edge2" and renamed.json()["member"][0]["user_id"] == user_id
    assert api.client.get(f"/api/organization/{org_id}", headers=api.as_user("jane")).status_code == 403
    login = api.client.post(
        "/api/auth/login", json={"username": "jane", "password": "secret-pw", "organization_name": "edge2"}
    )
    assert login.status_code == 200
    assert api.client.delete(f"/api/organization/{org_id}", headers=api.auth()).status_code == 200
    assert api.client.get(f"/api/organization/{org_id}", headers=api.auth()).status_code == 404
    root = api.client.get("/api/organization", headers=api.auth()).json()[0]["_id"]["$oid"]
    assert api.client.delete(f"/api/organization/{root}", headers=api.auth()).status_code == 409
