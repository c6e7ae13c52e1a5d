"""Running a playbook through ansible-runner's Python API, with events handed to a callback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from grove_api.settings import Settings

log = logging.getLogger("grove_api")


@dataclass
class RunRequest:
    playbook: Path
    inventory: Path
    private_dir: Path
    extravars: dict[str, Any]
    event_handler: Callable[[dict[str, Any]], bool]
    cancel: Callable[[], bool] = field(default=lambda: False)


@dataclass
class RunResult:
    rc: int | None
    status: str  # ansible-runner's: successful, failed, canceled, timeout, error
    error: str = ""


class Executor(Protocol):
    def run(self, request: RunRequest) -> RunResult: ...


def ansible_environment(settings: Settings) -> dict[str, str]:
    root = settings.repo_root
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(root / "collections"),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        # ansible-playbook from the same environment as the API, found first.
        "PATH": bin_dir if not path else f"{bin_dir}:{path}",
    }


class AnsibleRunnerExecutor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, request: RunRequest) -> RunResult:
        import ansible_runner  # noqa: PLC0415 - imported by the runner thread only

        try:
            runner = ansible_runner.run(
                private_data_dir=str(request.private_dir),
                ident="run",
                playbook=str(request.playbook),
                inventory=str(request.inventory),
                extravars=request.extravars,
                envvars=ansible_environment(self.settings),
                event_handler=request.event_handler,
                cancel_callback=request.cancel,
                quiet=True,
                settings={"suppress_ansible_output": True, "pexpect_timeout": 1},
            )
        except Exception as error:
            log.exception("ansible-runner could not run %s", request.playbook)
            return RunResult(None, "error", f"ansible-runner could not run {request.playbook.name}: {error}")
        return RunResult(runner.rc, runner.status)
