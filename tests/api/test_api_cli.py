"""`grove api`: options become GROVE_* settings and reach uvicorn; settings read the environment."""

from __future__ import annotations

import pytest
import uvicorn
from grove_api.settings import SOURCE_ROOT, Settings

from grove import cli


def _isolate(monkeypatch) -> None:
    # `grove api` writes GROVE_* into os.environ for uvicorn's workers: let monkeypatch undo that.
    for name in ("HOST", "PORT", "INVENTORY", "DATA_DIR", "DB", "MONGO_URL", "WORKERS"):
        monkeypatch.setenv(f"GROVE_{name}", "")
        monkeypatch.delenv(f"GROVE_{name}")


def test_grove_api_options_become_settings_and_reach_uvicorn(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    _isolate(monkeypatch)
    inventory = tmp_path / "inventory.yml"
    assert (
        cli.main(
            [
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                "10444",
                "--inventory",
                str(inventory),
                "--data-dir",
                str(tmp_path / "d"),
                "--workers",
                "2",
            ]
        )
        == 0
    )
    app, kwargs = calls[0]
    assert app == "grove_api.main:app_from_env" and kwargs["factory"] is True
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("127.0.0.1", 10444, 2)
    settings = Settings()  # what each worker process reads
    assert settings.inventory == inventory and settings.data_dir == tmp_path / "d"
    assert settings.db == tmp_path / "d" / "grove.db"


def test_settings_come_from_grove_variables_and_default_to_the_source_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("GROVE_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("GROVE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.max_body_bytes == 4096
    assert settings.repo_root == SOURCE_ROOT and (SOURCE_ROOT / "ansible.cfg").is_file()
    assert settings.playbooks == SOURCE_ROOT / "playbooks"
    assert (settings.playbooks / "deploy.yml").is_file() and (settings.playbooks / "facts.yml").is_file()


def test_a_bad_setting_fails_before_anything_starts(monkeypatch, capsys):
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn must not start"))
    _isolate(monkeypatch)
    assert cli.main(["api", "--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err
