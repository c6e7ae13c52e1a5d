# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd access for Grove: reads through the gRPC API, changes through the `ctr` CLI.

Every ctr call is an argv list; image references, ids and arguments are passed after `--` where
ctr takes positional arguments, so no value can be read as an option.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ansible_collections.grove.edge.plugins.module_utils import _containerd_grpc as grpc

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "grove"
POLL_INTERVAL = 0.05


class ContainerdError(RuntimeError):
    """A containerd step failed; `step` names it, stdout/stderr are ctr's output."""

    def __init__(self, step: str, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.stdout = stdout
        self.stderr = stderr


def _not_found(stderr: str) -> bool:
    return "not found" in stderr


def error_line(stderr: str, stdout: str = "", rc: int = 1) -> str:
    """ctr's own error line ("ctr: ..."), not the log lines the client printed before it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ctr: "):
            return line
    if lines:
        return lines[-1]
    return stdout.strip() or f"ctr exited with {rc}"


class Containerd:
    def __init__(
        self,
        run: Callable[..., tuple[int, str, str]],
        address: str = DEFAULT_ADDRESS,
        namespace: str = DEFAULT_NAMESPACE,
        ctr: str = "ctr",
    ) -> None:
        self._run = run
        self.address = address
        self.namespace = namespace
        self._ctr = [ctr, "--address", address, "--namespace", namespace]

    # --- reads (gRPC) ------------------------------------------------------------------------

    def _grpc(self, step: str, function: Callable, *args: object) -> object:
        try:
            return function(self.address, *args)
        except grpc.GrpcError as exc:
            raise ContainerdError(step, str(exc)) from exc

    def container(self, container_id: str) -> dict | None:
        found = self._grpc(
            "read container", grpc.list_containers, self.namespace, [f"id=={_quote(container_id)}"]
        )
        return found[0] if found else None  # type: ignore[index]

    def containers(self, filters: list[str] | None = None) -> list[dict]:
        return self._grpc("list containers", grpc.list_containers, self.namespace, filters)  # type: ignore[return-value]

    def tasks(self) -> dict[str, dict]:
        return self._grpc("list tasks", grpc.list_tasks, self.namespace)  # type: ignore[return-value]

    def task(self, container_id: str) -> dict | None:
        return self.tasks().get(container_id)

    def version(self) -> dict[str, str]:
        return self._grpc("read version", grpc.version)  # type: ignore[return-value]

    def image_present(self, ref: str) -> bool:
        return bool(self._grpc("read image", grpc.list_images, self.namespace, [f"name=={_quote(ref)}"]))

    # --- changes (ctr) -----------------------------------------------------------------------

    def ctr(self, step: str, args: list[str], ok_if_not_found: bool = False) -> bool:
        """Run ctr; False if it hit 'not found' and that was fine. Raises on any other failure."""
        rc, stdout, stderr = self._run(self._ctr + args)
        if rc == 0:
            return True
        if ok_if_not_found and _not_found(stderr):
            return False
        raise ContainerdError(step, error_line(stderr, stdout, rc), stdout, stderr)

    def pull(self, ref: str, hosts_dir: str, timeout: int) -> None:
        argv = ["images", "pull"]
        if hosts_dir:
            argv += ["--hosts-dir", hosts_dir]
        argv += ["--", ref]
        # ctr has no deadline of its own; coreutils' timeout gives the pull one.
        rc, stdout, stderr = self._run(["timeout", str(timeout), *self._ctr, *argv])
        if rc == 124:
            raise ContainerdError(f"pull image {ref}", f"timed out after {timeout} s", stdout, stderr)
        if rc != 0:
            raise ContainerdError(f"pull image {ref}", error_line(stderr, stdout, rc), stdout, stderr)

    def create(
        self, container_id: str, image: str, options: list[str], args: list[str], log_uri: str | None
    ) -> None:
        """`ctr run -d` (log_uri given: container and running task) or `ctr containers create`."""
        if log_uri is None:
            argv = ["containers", "create", *options]
        else:
            argv = ["run", "--detach", "--log-uri", log_uri, *options]
        self.ctr(
            "create container" if log_uri is None else "run container",
            [*argv, "--", image, container_id, *args],
        )

    def start(self, container_id: str, log_uri: str) -> None:
        self.ctr("start task", ["tasks", "start", "--detach", "--log-uri", log_uri, "--", container_id])

    def kill(self, container_id: str, signal: str) -> bool:
        found = self.ctr(
            f"kill task with {signal}",
            ["tasks", "kill", "--signal", signal, "--", container_id],
            ok_if_not_found=True,
        )
        return found

    def wait_stopped(self, container_id: str, timeout: float) -> bool:
        """Poll until the task is gone or stopped; False when the deadline passed first."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.task(container_id)
            if task is None or task["status"] == "STOPPED":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)

    def stop(self, container_id: str, timeout: float) -> None:
        """SIGTERM, then SIGKILL once `timeout` has passed; returns when the process is gone."""
        task = self.task(container_id)
        if task is None or task["status"] == "STOPPED":
            return
        if task["status"] in ("PAUSED", "PAUSING"):
            self.ctr("resume task", ["tasks", "resume", "--", container_id], ok_if_not_found=True)
        self.kill(container_id, "SIGTERM")
        if self.wait_stopped(container_id, timeout):
            return
        self.kill(container_id, "SIGKILL")
        if not self.wait_stopped(container_id, 30):
            raise ContainerdError("stop task", "the task is still running 30 s after SIGKILL")

    def delete_task(self, container_id: str) -> bool:
        # Exits 0 for any exit status of the process in 1.6 (it only logs a warning).
        found = self.ctr("delete task", ["tasks", "delete", "--", container_id], ok_if_not_found=True)
        return found

    def delete_container(self, container_id: str) -> bool:
        # Removes the container's rootfs snapshot along with it (ctr's default).
        found = self.ctr(
            "delete container", ["containers", "delete", "--", container_id], ok_if_not_found=True
        )
        return found

    def set_labels(self, container_id: str, labels: dict[str, str]) -> None:
        """Set labels; an empty value removes the label."""
        self.ctr(
            "label container",
            ["containers", "label", "--", container_id]
            + ["{}={}".format(*item) for item in sorted(labels.items())],
        )

    def snapshot_exists(self, key: str) -> bool:
        found = self.ctr("read snapshot", ["snapshots", "info", "--", key], ok_if_not_found=True)
        return found

    def delete_snapshot(self, key: str) -> bool:
        found = self.ctr("delete snapshot", ["snapshots", "delete", "--", key], ok_if_not_found=True)
        return found


def _quote(value: str) -> str:
    # containerd filter values: a double-quoted string with backslash escapes.
    return '"{}"'.format(value.replace("\\", "\\\\").replace('"', '\\"'))
