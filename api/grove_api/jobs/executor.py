"""Running a playbook through ansible-runner's Python API, with events handed to a callback."""

from __future__ import annotations

import configparser
import logging
import os
import signal
import subprocess
import sys
import time
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


# Every process of a run (ansible-playbook, its workers, which Ansible detaches into sessions of
# their own, and the SSH they start) inherits this variable: it finds them all, also after their
# parent died.
RUN_MARKER = "GROVE_RUN_DIR"


def run_processes(private_dir: Path) -> list[int]:
    wanted = f"{RUN_MARKER}={private_dir}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_run_processes(private_dir: Path, grace: float = 10) -> list[int]:
    """SIGTERM, then SIGKILL, every process left of the run in `private_dir`; the pids found."""
    found = run_processes(private_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in run_processes(private_dir):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while run_processes(private_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not run_processes(private_dir):
            break
    return found


class Executor(Protocol):
    def run(self, request: RunRequest) -> RunResult: ...


def control_dir(settings: Settings) -> Path:
    """Where the SSH master connections shared by all runs have their sockets."""
    return settings.data_dir / "cp"


def ansible_environment(settings: Settings, private_dir: Path | None = None) -> dict[str, str]:
    root = settings.repo_root
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(root / "collections"),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        # ansible-runner turns host key checking off unless the environment says otherwise.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # ansible-playbook from the same environment as the API, found first.
        "PATH": bin_dir if not path else f"{bin_dir}:{path}",
        **({RUN_MARKER: str(private_dir)} if private_dir is not None else {}),
    }
    if settings.mitogen:
        env.update(mitogen_environment())
    if settings.ssh_shared_connections:
        env.update(shared_connections_environment(settings))
    return env


# ssh needs the control socket's path, plus the temporary suffix it adds while creating it, to fit
# in a socket address (108 bytes); %C expands to 40 characters.
MAX_CONTROL_DIR = 48


def configured_ssh_args(settings: Settings) -> str:
    """[ssh_connection] ssh_args of the ansible.cfg the runs use (Ansible's default without one)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(settings.repo_root / "ansible.cfg")
    return parser.get("ssh_connection", "ssh_args", fallback="-C -o ControlMaster=auto -o ControlPersist=60s")


def shared_connections_environment(settings: Settings) -> dict[str, str]:
    """SSH master connections that outlive one run, in a control directory of the API's own.

    Without it runs use ~/.ansible/cp, shared with root's own ansible runs (a master opened with
    other options would carry the API's jobs), and their masters outlive `grove api`. Ansible's
    ssh connection puts its sockets in ANSIBLE_SSH_CONTROL_PATH_DIR; Mitogen's only multiplexes
    with a ControlPath in ssh_args, else every run opens new connections (docs/benchmarks.md)."""
    directory = control_dir(settings)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(directory)}
    if settings.mitogen and len(str(directory)) <= MAX_CONTROL_DIR:
        args = os.environ.get("ANSIBLE_SSH_ARGS") or configured_ssh_args(settings)
        if "ControlPersist" in args and "ControlPath" not in args:
            env["ANSIBLE_SSH_ARGS"] = f"{args} -o ControlPath={directory}/%C"
    return env


def mitogen_environment() -> dict[str, str]:
    """Ansible's settings for Mitogen's linear strategy (the `mitogen` package's plugins)."""
    import ansible_mitogen  # noqa: PLC0415 - only when asked for

    strategies = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(strategies), "ANSIBLE_STRATEGY": "mitogen_linear"}


def close_connections(settings: Settings) -> int:
    """Ask every shared SSH master connection to exit; how many there were."""
    directory = control_dir(settings)
    if not directory.is_dir():
        return 0
    closed = 0
    for socket_path in directory.iterdir():
        if not socket_path.is_socket():
            continue
        # The host name is only a placeholder: the control socket names the connection.
        command = ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "grove-worker"]
        try:
            subprocess.run(command, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            log.warning("could not close the SSH connection %s", socket_path)
        closed += 1
    return closed


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
                envvars=ansible_environment(self.settings, request.private_dir),
                event_handler=request.event_handler,
                cancel_callback=request.cancel,
                quiet=True,
                settings={"suppress_ansible_output": True, "pexpect_timeout": 1},
            )
        except Exception as error:  # reported on the job, not raised into the runner's loop
            log.exception("ansible-runner could not run %s", request.playbook)
            stop_run_processes(request.private_dir)
            return RunResult(None, "error", f"ansible-runner could not run {request.playbook.name}: {error}")
        if runner.status not in ("successful", "failed"):
            # Cancelled or timed out: ansible-runner killed ansible-playbook's process group only,
            # while Ansible's workers run in sessions of their own.
            stop_run_processes(request.private_dir)
        return RunResult(runner.rc, runner.status)
