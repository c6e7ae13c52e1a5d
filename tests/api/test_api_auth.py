"""Login, refresh, tokens (expired, forged, alg none, wrong type), throttling, the signing key."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import time

import jwt
import pytest
from conftest import make_settings
from fastapi.testclient import TestClient
from grove_api.main import create_app
from grove_api.services.security import KEY_FILE, load_signing_key


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _key(api) -> bytes:
    return load_signing_key(api.grove.settings)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_login_answers_200_with_access_and_refresh_tokens_carrying_the_dashboards_claims(api):
    answer = api.client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"})
    assert answer.status_code == 200
    body = answer.json()
    access, refresh = _claims(body["token"]), _claims(body["refresh_token"])
    for claims in (access, refresh):
        assert set(claims) >= {"sub", "roles", "organization", "exp", "type", "iat", "jti"}
        assert claims["sub"] == "Admin"
        assert claims["roles"] == [
            "Admin",
            "Organization_Admin",
            "Application_Provider",
            "Infrastructure_Provider",
        ]
        assert len(claims["organization"]) == 24
    assert access["type"] == "access" and refresh["type"] == "refresh"
    assert access["exp"] - access["iat"] == 600
    assert refresh["exp"] - refresh["iat"] == 7 * 86400
    assert access["jti"] != refresh["jti"]
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"


def test_bad_credentials_answer_401_with_a_message(api):
    for body in ({"username": "Admin", "password": "wrong"}, {"username": "nobody", "password": "Admin"}):
        answer = api.client.post("/api/auth/login", json=body)
        assert answer.status_code == 401
        assert answer.json() == {"message": "invalid username or password"}


def test_login_with_an_organization_the_user_is_not_in_is_refused(api):
    answer = api.client.post(
        "/api/auth/login", json={"username": "Admin", "password": "Admin", "organization_name": "nope"}
    )
    assert answer.status_code == 401
    answer = api.client.post(
        "/api/auth/login", json={"username": "Admin", "password": "Admin", "organization_name": "root"}
    )
    assert answer.status_code == 200


def test_refresh_takes_only_a_refresh_token_and_answers_a_new_access_token(api):
    tokens = api.client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"}).json()
    answer = api.client.post(
        "/api/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert answer.status_code == 200
    assert set(answer.json()) == {"token"}
    assert _claims(answer.json()["token"])["type"] == "access"
    refused = api.client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {tokens['token']}"})
    assert refused.status_code == 401
    assert "refresh" in refused.json()["message"]
    # ... and a refresh token is no access token.
    answer = api.client.get("/api/user/Admin", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert answer.status_code == 401


def test_missing_malformed_expired_forged_and_unsigned_tokens_answer_401(api):
    key = _key(api)
    now = int(time.time())
    base = {"sub": "Admin", "roles": ["Admin"], "organization": "x", "type": "access", "jti": "j"}
    expired = jwt.encode({**base, "iat": now - 700, "exp": now - 100}, key, algorithm="HS256")
    forged = jwt.encode({**base, "iat": now, "exp": now + 600}, b"k" * 32, algorithm="HS256")
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({**base, 'iat': now, 'exp': now + 600})}."
    hs512 = jwt.encode({**base, "iat": now, "exp": now + 600}, key, algorithm="HS512")
    no_jti = jwt.encode(
        {k: v for k, v in {**base, "iat": now, "exp": now + 600}.items() if k != "jti"},
        key,
        algorithm="HS256",
    )
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {base64.b64encode(b'Admin:Admin').decode()}"},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "forged": {"Authorization": f"Bearer {forged}"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "other algorithm": {"Authorization": f"Bearer {hs512}"},
        "claim missing": {"Authorization": f"Bearer {no_jti}"},
    }
    for name, headers in cases.items():
        answer = api.client.get("/api/user/Admin", headers=headers)
        assert answer.status_code == 401, name
        assert answer.json()["message"], name
        assert answer.headers["www-authenticate"] == "Bearer", name
    assert "expired" in api.client.get("/api/user/Admin", headers=cases["expired"]).json()["message"]
    valid = jwt.encode({**base, "iat": now, "exp": now + 600}, key, algorithm="HS256")
    assert api.client.get("/api/user/Admin", headers={"Authorization": f"Bearer {valid}"}).status_code == 200


def test_a_token_of_a_deleted_user_stops_working(api):
    api.add_user("carol")
    headers = api.as_user("carol")
    assert api.client.get("/api/user/carol", headers=headers).status_code == 200
    assert api.client.delete("/api/user/carol", headers=api.auth()).status_code == 200
    assert api.client.get("/api/user/carol", headers=headers).status_code == 401


def test_failed_logins_are_throttled_with_retry_after_even_for_the_right_password(api):
    limit = api.grove.settings.login_max_failures
    for _ in range(limit):
        assert (
            api.client.post("/api/auth/login", json={"username": "Admin", "password": "guess"}).status_code
            == 401
        )
    answer = api.client.post("/api/auth/login", json={"username": "Admin", "password": "guess"})
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.json()["message"]
    right = api.client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"})
    assert right.status_code == 429


def test_the_lockout_ends_and_a_success_clears_the_count(tmp_path):
    app = create_app(make_settings(tmp_path, login_max_failures=2, login_lockout_seconds=0.001))
    with TestClient(app) as client:
        for _ in range(2):
            assert (
                client.post("/api/auth/login", json={"username": "Admin", "password": "x"}).status_code == 401
            )
        deadline = time.monotonic() + 10
        while True:
            answer = client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"})
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
        assert answer.status_code == 200
        assert app.state.grove.store.count("login_failures") == 0


def test_signing_key_is_generated_once_with_mode_0600_and_reused(tmp_path):
    settings = make_settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    first = load_signing_key(settings)
    path = settings.data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_signing_key(settings) == first
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="readable by others"):
        load_signing_key(settings)


def test_a_configured_signing_key_is_used_and_must_be_long_enough(tmp_path):
    settings = make_settings(tmp_path, jwt_secret="s" * 40)
    assert load_signing_key(settings) == b"s" * 40
    assert not (settings.data_dir / KEY_FILE).exists()
    with pytest.raises(ValueError, match="at least 32"):
        load_signing_key(make_settings(tmp_path, jwt_secret="short"))


def test_admin_is_created_once_with_a_warning_while_the_password_is_admin(tmp_path, caplog):
    settings = make_settings(tmp_path)
    with caplog.at_level(logging.WARNING, logger="grove_api"), TestClient(create_app(settings)) as client:
        assert (
            client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"}).status_code == 200
        )
        token = client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"}).json()[
            "token"
        ]
        changed = client.post(
            "/api/user/Admin",
            headers={"Authorization": f"Bearer {token}"},
            json={"oldPassword": "Admin", "newPassword": "n3w-secret"},
        )
        assert changed.status_code == 200
    assert "default password" in caplog.text
    caplog.clear()
    # A second start keeps the user (and its new password) and no longer warns.
    with caplog.at_level(logging.WARNING, logger="grove_api"), TestClient(create_app(settings)) as client:
        assert (
            client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"}).status_code == 401
        )
        assert (
            client.post("/api/auth/login", json={"username": "Admin", "password": "n3w-secret"}).status_code
            == 200
        )
        assert app_users(client, "n3w-secret") == ["Admin"]
    assert "default password" not in caplog.text


def app_users(client, password):
    token = client.post("/api/auth/login", json={"username": "Admin", "password": password}).json()["token"]
    return [u["name"] for u in client.get("/api/users", headers={"Authorization": f"Bearer {token}"}).json()]


def test_grove_admin_password_sets_the_first_password(tmp_path, caplog):
    settings = make_settings(tmp_path, admin_password="from-the-env")
    with caplog.at_level(logging.WARNING, logger="grove_api"), TestClient(create_app(settings)) as client:
        assert (
            client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"}).status_code == 401
        )
        assert (
            client.post("/api/auth/login", json={"username": "Admin", "password": "from-the-env"}).status_code
            == 200
        )
    assert "default password" not in caplog.text


def test_changing_the_password_ends_older_tokens(api):
    api.add_user("erin", password="first-pw")
    old = api.client.post("/api/auth/login", json={"username": "erin", "password": "first-pw"}).json()[
        "token"
    ]
    headers = {"Authorization": f"Bearer {old}"}
    answer = api.client.post(
        "/api/user/erin", headers=headers, json={"oldPassword": "first-pw", "newPassword": "second-pw"}
    )
    assert answer.status_code == 200
    fresh = api.client.post("/api/auth/login", json={"username": "erin", "password": "second-pw"})
    assert fresh.status_code == 200
    assert (
        api.client.post("/api/auth/login", json={"username": "erin", "password": "first-pw"}).status_code
        == 401
    )
    assert api.client.get("/api/user/erin", headers=headers).status_code == 401
    new_headers = {"Authorization": f"Bearer {fresh.json()['token']}"}
    assert api.client.get("/api/user/erin", headers=new_headers).status_code == 200
