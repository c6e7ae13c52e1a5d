"""Rules that hold for every endpoint: CORS, both slash forms, body limits, JSON errors, offline docs."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from conftest import make_settings
from fastapi.testclient import TestClient
from grove_api.main import create_app

REPO = Path(__file__).resolve().parents[2]


def test_cors_preflight_is_answered_for_any_origin_with_authorization_and_content_type(api):
    answer = api.client.options(
        "/api/applications",
        headers={
            "Origin": "http://dashboard.example",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "DELETE" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_cors_headers_are_on_successes_and_errors(api):
    ok = api.client.get("/api/users", headers={**api.auth(), "Origin": "http://x"})
    error = api.client.get("/api/users", headers={"Origin": "http://x"})
    assert ok.status_code == 200 and error.status_code == 401
    for answer in (ok, error):
        assert answer.headers["access-control-allow-origin"] == "*"


def test_both_slash_forms_reach_the_same_route_without_a_redirect(api):
    for path in ("/api/users", "/api/users/", "/api/user/Admin", "/api/user/Admin/"):
        answer = api.client.get(path, headers=api.auth(), follow_redirects=False)
        assert answer.status_code == 200, path
    for path in ("/api/auth/login", "/api/auth/login/"):
        answer = api.client.post(
            path, json={"username": "Admin", "password": "Admin"}, follow_redirects=False
        )
        assert answer.status_code == 200, path


def test_the_dashboards_content_type_on_get_and_delete_is_fine(api):
    answer = api.client.get("/api/users", headers={**api.auth(), "Content-Type": "application/json"})
    assert answer.status_code == 200


def test_an_oversized_body_answers_413_whether_announced_or_streamed(tmp_path):
    app = create_app(make_settings(tmp_path, max_body_bytes=2048))
    with TestClient(app) as client:
        big = b'{"username": "' + b"a" * 4096 + b'", "password": "x"}'
        answer = client.post("/api/auth/login", content=big, headers={"Content-Type": "application/json"})
        assert answer.status_code == 413
        assert "2048" in answer.json()["message"]

        def chunks():
            yield big[:1000]
            yield big[1000:]

        answer = client.post(
            "/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 413
        assert answer.json()["message"]
        small = client.post("/api/auth/login", json={"username": "Admin", "password": "Admin"})
        assert small.status_code == 200


def test_malformed_json_answers_400_and_wrong_types_422_with_every_field(api):
    answer = api.client.post(
        "/api/auth/login", content=b'{"username": "Admin",', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("the request body is not valid JSON")
    answer = api.client.post("/api/auth/login", json={"username": 5, "password": ["x"]})
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {"username", "password"}
    answer = api.client.post("/api/auth/login", json=["not", "an", "object"])
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"field": "", "reason": "must be a JSON object"}]
    answer = api.client.post("/api/auth/login")
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["reason"] == "a JSON body is required"


def test_unknown_paths_and_methods_answer_json_with_a_message(api):
    answer = api.client.get("/api/nothing-here", headers=api.auth())
    assert answer.status_code == 404 and answer.json() == {"message": "no such endpoint"}
    answer = api.client.patch("/api/users", headers=api.auth())
    assert answer.status_code == 405 and answer.json()["message"]


def test_swagger_ui_is_served_at_api_docs_with_local_assets_only(api):
    page = api.client.get("/api/docs")
    assert page.status_code == 200
    assert api.client.get("/api/docs/").status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text
    for url in urls:
        assert url.startswith("/api/"), f"{url} would need the internet"
        asset = api.client.get(url)
        assert asset.status_code == 200, url
    assert "swagger-ui-bundle.js" in page.text
    assert "SwaggerUIBundle" in api.client.get("/api/docs/static/swagger-ui-bundle.js").text


def test_openapi_describes_every_route_with_typed_models_and_bearer_auth(api):
    document = api.client.get("/api/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert ok, (method, path)
            assert ok != {}, f"{method} {path} answers an untyped body"
            if method in ("post", "put") and "requestBody" in operation:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert schema != {}, f"{method} {path} takes an untyped body"


def test_every_endpoint_but_login_answers_401_without_a_token(api):
    document = api.client.get("/api/openapi.json").json()
    public = {("post", "/api/auth/login")}
    checked = 0
    for path, operations in document["paths"].items():
        concrete = path
        for name in ("username", "organization_id", "userid", "appid", "serviceid", "job_id"):
            concrete = concrete.replace("{" + name + "}", "0" * 24)
        concrete = concrete.replace("{instance_number}", "0")
        for method in operations:
            if (method, path) in public:
                continue
            answer = api.client.request(method.upper(), concrete, json={})
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.json()["message"]
            checked += 1
    assert checked >= 30


def test_every_get_runs_on_the_event_loop_and_only_reads(api):
    # GET handlers are coroutines (no thread pool hop: docs/benchmarks.md, API), so they must never
    # wait for the store's write lock: each GET answers with every write of the store refused.
    from fastapi.routing import APIRoute  # noqa: PLC0415
    from grove_api.main import ROUTERS  # noqa: PLC0415

    routes = [r for module in ROUTERS for r in module.router.routes]
    gets = [r for r in routes if isinstance(r, APIRoute) and "GET" in r.methods]
    assert len(gets) >= 15
    assert [r.path for r in gets if not inspect.iscoroutinefunction(r.endpoint)] == []
    headers = api.auth()
    descriptor = json.loads((REPO / "examples" / "clientsrvr.json").read_text())
    app = api.client.post("/api/application", json=descriptor, headers=headers).json()[0]
    service = app["microservices"][1]
    job = api.client.post(f"/api/service/{service}/instance", headers=headers).json()["job_id"]
    admin = api.client.get("/api/user/Admin", headers=headers).json()
    store = api.grove.store

    def refused(*args, **kwargs):
        raise AssertionError("a GET wrote to the store")

    ids = {
        "username": "Admin",
        "userid": admin["_id"]["$oid"],
        "appid": app["applicationID"],
        "serviceid": service,
        "job_id": job,
        "organization_id": "0" * 24,
    }
    for name in ("insert", "update", "delete", "increment"):
        setattr(store, name, refused)
    checked = 0
    for route in gets:
        path = route.path
        for name, value in ids.items():
            path = path.replace("{" + name + "}", value)
        if path.startswith("/api/docs") or "{" in path:
            continue
        answer = api.client.get(path, headers=headers)
        assert answer.status_code in (200, 404), (path, answer.status_code, answer.text)
        checked += answer.status_code == 200
    assert checked >= 12
