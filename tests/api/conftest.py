"""Fixtures of the API tests that need no test bed: stores on both backends, an app with a client."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from grove_api.store.base import Store
from grove_api.store.sqlite import SQLiteStore


def _mongomock_store() -> Store:
    import mongomock  # noqa: PLC0415
    from grove_api.store.mongo import MongoStore  # noqa: PLC0415

    return MongoStore(mongomock.MongoClient(), f"grove_{uuid.uuid4().hex[:8]}")


def _mongodb_store() -> Store:
    from grove_api.store.mongo import MongoStore  # noqa: PLC0415

    store = MongoStore.connect(os.environ["GROVE_TEST_MONGO_URL"], f"grove_test_{uuid.uuid4().hex[:8]}")
    return store


# MongoDB: a real server when GROVE_TEST_MONGO_URL names one, else mongomock (named so in the ids).
STORE_BACKENDS = ["sqlite", "mongodb" if os.environ.get("GROVE_TEST_MONGO_URL") else "mongomock"]


@pytest.fixture(params=STORE_BACKENDS)
def any_store(request, tmp_path) -> Store:
    if request.param == "sqlite":
        store: Store = SQLiteStore(tmp_path / "grove.db")
    elif request.param == "mongomock":
        store = _mongomock_store()
    else:
        store = _mongodb_store()
    yield store
    if request.param == "mongodb":
        store.client.drop_database(store.db.name)
    store.close()


# Cheap argon2 for the tests (the real cost is measured in benchmarks/bench_api.py); a tiny lockout.
FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 64, "login_lockout_seconds": 30}


class Api:
    """A TestClient with helpers: log in, act as a user."""

    def __init__(self, client, grove) -> None:
        self.client = client
        self.grove = grove
        self._tokens: dict[str, str] = {}

    def token(self, username: str = "Admin", password: str = "Admin") -> str:
        key = f"{username}\0{password}"
        if key not in self._tokens:
            answer = self.client.post("/api/auth/login", json={"username": username, "password": password})
            assert answer.status_code == 200, answer.text
            self._tokens[key] = answer.json()["token"]
        return self._tokens[key]

    def auth(self, username: str = "Admin", password: str = "Admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username, password)}"}

    def add_user(self, name: str, password: str = "secret-pw", roles=("Application_Provider",)) -> dict:
        answer = self.client.post(
            "/api/auth/register",
            headers=self.auth(),
            json={"name": name, "password": password, "email": f"{name}@example.org", "roles": list(roles)},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def as_user(self, name: str, password: str = "secret-pw") -> dict[str, str]:
        return self.auth(name, password)


def make_settings(tmp_path, **overrides):
    from grove_api.settings import Settings  # noqa: PLC0415

    return Settings(data_dir=tmp_path / "data", **{"run_jobs": False, **FAST, **overrides})


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def api(settings):
    from fastapi.testclient import TestClient  # noqa: PLC0415
    from grove_api.main import create_app  # noqa: PLC0415

    app = create_app(settings)
    with TestClient(app) as client:
        yield Api(client, app.state.grove)


SEED_PATH = Path(__file__).resolve().parents[2] / "examples" / "clientsrvr.json"


def seed() -> dict:
    return json.loads(SEED_PATH.read_text())


@pytest.fixture
def simulator():
    from deploy_simulator import DeploySimulator  # noqa: PLC0415

    return DeploySimulator()


@pytest.fixture
def sim_api(tmp_path, simulator):
    """The API with a job runner whose playbook runs are simulated (see deploy_simulator.py); the
    tests drive the runner with `api.grove.runner.tick()`."""
    from fastapi.testclient import TestClient  # noqa: PLC0415
    from grove_api.main import create_app  # noqa: PLC0415

    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {}\n")
    settings = make_settings(tmp_path, inventory=inventory, job_batch_seconds=0)
    app = create_app(settings, executor=simulator)
    with TestClient(app) as client:
        api = Api(client, app.state.grove)
        api.simulator = simulator
        yield api
