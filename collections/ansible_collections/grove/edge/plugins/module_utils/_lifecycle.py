# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle of one instance on its worker: inspect, plan, act.

`observe` reads what exists (container, task, CNI cache, network namespace, IPAM allocations,
...), `plan` is a pure function from that to the steps that make it what is wanted, and
`Lifecycle.apply` carries the steps out (in check mode it only lists them). Keeping the plan
pure is what lets every case (a stopped instance, an exited task, a one-shot that completed, a
network whose CNI cache is lost) be tested on plain data, next to the real runs on the test bed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ansible_collections.grove.edge.plugins.module_utils import _cni as cni_utils
from ansible_collections.grove.edge.plugins.module_utils import _instance as spec_utils
from ansible_collections.grove.edge.plugins.module_utils import _service_names as names
from ansible_collections.grove.edge.plugins.module_utils._cni import Attachment, Cni, CniError
from ansible_collections.grove.edge.plugins.module_utils._containerd import Containerd, ContainerdError

NETNS_DIR = "/var/run/netns"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
RUNNING_TASK = ("RUNNING", "PAUSED", "PAUSING")
# portmap tears down by chain names derived from the container id, but does nothing at all
# unless it is given some mapping: this one stands in when the real ones are unknown.
PLACEHOLDER_PORTS = [{"hostPort": 1, "containerPort": 1, "protocol": "tcp"}]


def default_cni_bin_dir() -> str:
    return next((d for d in CNI_BIN_DIRS if os.path.isdir(d)), CNI_BIN_DIRS[-1])


@dataclass(frozen=True)
class Settings:
    """Where things live on the worker: the same for every instance, set once per play."""

    namespace: str = "grove"
    containerd_address: str = "/run/containerd/containerd.sock"
    cni_bin_dir: str = ""
    hosts_dir: str = "/etc/containerd/certs.d"
    log_dir: str = "/var/log/grove"
    env_dir: str = "/run/grove/env"
    names_dir: str = names.DEFAULT_HOSTS_DIR
    subnet: str = "10.18.0.0/24"
    bridge: str = "grove0"
    routes: tuple[str, ...] = ("0.0.0.0/0",)
    mtu: int = 0
    pull_timeout: int = 300
    stop_timeout: float = 10


@dataclass
class Observed:
    """What exists of the instance on the worker."""

    container: dict | None = None
    task: dict | None = None
    cache: dict | None = None
    netns: bool = False
    ipam: list[str] = field(default_factory=list)
    image_present: bool = True
    snapshot: bool = False
    log_file: bool = False
    names_file: bool = False
    nat_rules: list[list[str]] = field(default_factory=list)

    @property
    def labels(self) -> dict:
        return self.container["labels"] if self.container else {}


@dataclass(frozen=True)
class Step:
    action: str
    description: str


class StepFailed(Exception):
    def __init__(self, step: str, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.stdout = stdout
        self.stderr = stderr


# --- the plan (pure) ---------------------------------------------------------------------------


def _container_removal(observed: Observed, why: str = "") -> list[Step]:
    steps = []
    if observed.task:
        if observed.task["status"] != "STOPPED":
            steps.append(Step("stop", why + "stop task"))
        steps.append(Step("delete_task", why + "delete task"))
    if observed.container:
        steps.append(Step("delete_container", why + "delete container"))
    return steps


def _network_removal(observed: Observed) -> list[Step]:
    steps = []
    if observed.cache:
        steps.append(Step("cni_del", "detach network (CNI DEL)"))
    elif observed.netns or observed.ipam:
        # No cache (a crash between CNI ADD and writing it): DEL with the best knowledge at hand.
        steps.append(Step("cni_del_uncached", "detach network (CNI DEL without cache)"))
    if observed.netns:
        steps.append(Step("delete_netns", "delete network namespace"))
    if observed.nat_rules and not steps:
        steps.append(Step("remove_nat", f"remove {len(observed.nat_rules)} leftover NAT rules"))
    return steps


def _network_setup(observed: Observed) -> list[Step]:
    if observed.netns and observed.cache:
        return []
    steps = []
    if observed.cache or observed.ipam or observed.netns:
        # Stale attachment (the namespace went away, e.g. with a reboot, or ADD never finished).
        steps += _network_removal(observed)
    return [
        *steps,
        Step("create_netns", "create network namespace"),
        Step("cni_add", "attach network (CNI ADD)"),
    ]


def plan_absent(observed: Observed) -> list[Step]:
    steps = _container_removal(observed)
    if not observed.container and observed.snapshot:
        steps.append(Step("delete_snapshot", "delete snapshot"))
    steps += _network_removal(observed)
    if observed.log_file:
        steps.append(Step("delete_log", "delete log file"))
    if observed.names_file:
        steps.append(Step("delete_names", "delete hosts file"))
    return steps


def plan_present(
    observed: Observed, *, start: bool, wanted_hash: str, one_shot: bool, image: str
) -> list[Step]:
    steps: list[Step] = []
    if observed.container and observed.labels.get(spec_utils.LABEL_SPEC_HASH) != wanted_hash:
        steps += _container_removal(observed, why="configuration changed: ")
        steps += _network_removal(observed)
        observed = Observed(image_present=observed.image_present)
    if not observed.container:
        if not observed.image_present:
            steps.append(Step("pull", f"pull image {image}"))
        steps += _network_setup(observed)
        steps.append(Step("run", "run container") if start else Step("create", "create container"))
        return steps
    task = observed.task
    if not start:
        if task:
            if task["status"] != "STOPPED":
                steps.append(Step("stop", "stop task"))
            steps.append(Step("delete_task", "delete task"))
        if observed.labels.get(spec_utils.LABEL_STATE) != spec_utils.STOPPED:
            steps.append(Step("label_stopped", f"update labels {spec_utils.LABEL_STATE}"))
        return steps
    if task and task["status"] in RUNNING_TASK:
        return steps
    if task and task["status"] == "STOPPED" and task.get("exit_status") == 0 and one_shot:
        return steps  # COMPLETED: a one-shot task that succeeded stays as it is
    if task:
        why = task["status"]
        if why == "STOPPED":
            why = f"exited with status {task.get('exit_status')}"
        steps.append(Step("delete_task", f"delete task ({why})"))
    network = _network_setup(observed)
    steps += network
    address = cni_utils.container_address(observed.cache["result"]) if observed.cache else ""
    stale = {
        label
        for label, wanted in ((spec_utils.LABEL_STATE, ""), (spec_utils.LABEL_ADDRESS, address))
        if observed.labels.get(label, "") != wanted
    }
    if network:
        stale.add(spec_utils.LABEL_ADDRESS)
    if stale:
        steps.append(Step("label_started", "update labels {}".format(", ".join(sorted(stale)))))
    steps.append(Step("start", "start task"))
    return steps


# --- inspecting and acting ---------------------------------------------------------------------


class Lifecycle:
    """One instance on this worker. `spec` (from _instance.desired_spec) is None for `absent`."""

    def __init__(
        self,
        run: Callable[..., tuple[int, str, str]],
        settings: Settings,
        service: str,
        number: int,
        *,
        check_mode: bool = False,
    ) -> None:
        self._exec = run
        self.settings = settings
        self.service = service
        self.number = number
        self.check_mode = check_mode
        self.id = spec_utils.instance_id(service, number)
        self.netns_path = os.path.join(NETNS_DIR, self.id)
        self.log_path = os.path.join(settings.log_dir, self.id + ".log")
        self.env_path = os.path.join(settings.env_dir, self.id + ".env")
        self.names_path = names.hosts_path(settings.names_dir, self.id)
        self.containerd = Containerd(run, settings.containerd_address, settings.namespace)
        self.cni = Cni(run, settings.cni_bin_dir or default_cni_bin_dir())
        self.spec: dict = {}
        self.env: list[str] = []
        self.labels: dict[str, str] = {}
        self.address = ""
        self.actions: list[str] = []
        self.completed = 0

    # --- inspect -------------------------------------------------------------------------------

    def observe(self, *, for_removal: bool = False) -> Observed:
        container = self.containerd.container(self.id)
        cache = self.cni.cached(spec_utils.NETWORK_NAME, self.id)
        observed = Observed(
            container=container,
            task=self.containerd.task(self.id),
            cache=cache,
            netns=os.path.exists(self.netns_path),
            ipam=self.cni.ipam_allocations(spec_utils.NETWORK_NAME, self.id),
        )
        if for_removal:
            observed.snapshot = container is None and self.containerd.snapshot_exists(self.id)
            observed.log_file = os.path.exists(self.log_path)
            observed.names_file = os.path.exists(self.names_path)
            if not (cache or observed.netns or observed.ipam):
                observed.nat_rules = self.cni.leftover_nat_rules(spec_utils.NETWORK_NAME, self.id)
        return observed

    def want(self, spec: dict, env: list[str], observed: Observed) -> str:
        """Take the desired spec and environment; returns the spec hash to compare with."""
        digest = spec_utils.env_digest(
            env, spec_utils.recorded_salt(observed.container) or spec_utils.new_salt()
        )
        self.spec, self.env = spec, env
        self.labels = spec_utils.container_labels(self.service, self.number, spec, digest)
        wanted_hash = self.labels[spec_utils.LABEL_SPEC_HASH]
        if observed.container is None or observed.labels.get(spec_utils.LABEL_SPEC_HASH) != wanted_hash:
            observed.image_present = self.containerd.image_present(spec["image"])
        return wanted_hash

    # --- act -----------------------------------------------------------------------------------

    def apply(self, steps: list[Step], observed: Observed) -> None:
        """Carry out the steps in order (only record them in check mode); raises StepFailed."""
        self.address = cni_utils.container_address(observed.cache["result"]) if observed.cache else ""
        for step in steps:
            self.actions.append(step.description)
            if self.check_mode:
                continue
            try:
                getattr(self, "_" + step.action)(observed)
            except (ContainerdError, CniError, StepFailed) as exc:
                message = str(exc)
                if isinstance(exc, ContainerdError) and message.startswith(exc.step + ": "):
                    message = message[len(exc.step) + 2 :]
                raise StepFailed(
                    step.description, message, getattr(exc, "stdout", ""), getattr(exc, "stderr", "")
                ) from exc
            except OSError as exc:
                raise StepFailed(step.description, str(exc)) from exc
            self.completed += 1

    def _command(self, argv: list[str]) -> None:
        rc, stdout, stderr = self._exec(argv)
        if rc != 0:
            raise StepFailed(argv[0], stderr.strip() or f"exit status {rc}", stdout, stderr)

    def _stop(self, _observed: Observed) -> None:
        self.containerd.stop(self.id, self.settings.stop_timeout)

    def _delete_task(self, _observed: Observed) -> None:
        self.containerd.delete_task(self.id)

    def _delete_container(self, _observed: Observed) -> None:
        self.containerd.delete_container(self.id)

    def _delete_snapshot(self, _observed: Observed) -> None:
        self.containerd.delete_snapshot(self.id)

    def _delete_log(self, _observed: Observed) -> None:
        os.unlink(self.log_path)

    def _delete_names(self, _observed: Observed) -> None:
        os.unlink(self.names_path)

    def _ensure_names_file(self) -> None:
        """The instance's /etc/hosts, bind-mounted read-only; grove.edge.service_names fills in the
        names of its application's services (rewriting it in place, so the mount sees them)."""
        if not os.path.exists(self.names_path):
            names.write_in_place(self.names_path, names.render_hosts(names.application_of(self.service), []))

    def _pull(self, _observed: Observed) -> None:
        self.containerd.pull(self.spec["image"], self.settings.hosts_dir, self.settings.pull_timeout)

    def _conflist(self, with_bandwidth: bool) -> dict:
        network = self.spec.get("network") or {
            "bridge": self.settings.bridge,
            "subnet": self.settings.subnet,
            "routes": list(self.settings.routes),
            "mtu": self.settings.mtu,
        }
        return cni_utils.network_config(
            spec_utils.NETWORK_NAME,
            network["bridge"],
            network["subnet"],
            network["routes"],
            with_bandwidth,
            mtu=network.get("mtu", 0),
        )

    def _netns_for_cni(self) -> str:
        return self.netns_path if os.path.exists(self.netns_path) else ""

    def _cni_del(self, observed: Observed) -> None:
        self.cni.delete_cached(observed.cache, self.id, self._netns_for_cni())
        self._remove_leftover_nat()

    def _cni_del_uncached(self, observed: Observed) -> None:
        known = spec_utils.recorded_ports(observed.container or {}) or self._wanted_ports()
        ports = cni_utils.port_mappings(known) or PLACEHOLDER_PORTS
        self.cni.delete(
            self._conflist(True), Attachment(self.id, self._netns_for_cni()), {"portMappings": ports}, None
        )
        self._remove_leftover_nat()

    def _remove_leftover_nat(self) -> None:
        # The bridge plugin removes its ipMasq rule only when it finds the container's interface.
        rules = self.cni.leftover_nat_rules(spec_utils.NETWORK_NAME, self.id)
        if rules:
            self.actions.append(f"remove {len(rules)} leftover NAT rules")
            self.cni.remove_nat_rules(rules)

    def _remove_nat(self, observed: Observed) -> None:
        self.cni.remove_nat_rules(observed.nat_rules)

    def _delete_netns(self, _observed: Observed) -> None:
        self._command(["ip", "netns", "delete", self.id])

    def _create_netns(self, _observed: Observed) -> None:
        self._command(["ip", "netns", "add", self.id])

    def _wanted_ports(self) -> list:
        return spec_utils.parse_ports(self.spec["ports"]) if self.spec else []

    def _cni_add(self, _observed: Observed) -> None:
        bandwidth = self.spec["bandwidth"]
        args: dict = {"portMappings": cni_utils.port_mappings(self._wanted_ports())}
        limits = cni_utils.bandwidth_limits(bandwidth["in"], bandwidth["out"])
        if limits:
            args["bandwidth"] = limits
        result = self.cni.add(self._conflist(bool(limits)), Attachment(self.id, self.netns_path), args)
        self.address = cni_utils.container_address(result)

    def _run_container(self, start: bool) -> None:
        labels = dict(self.labels)
        if self.address:
            labels[spec_utils.LABEL_ADDRESS] = self.address
        if not start:
            labels[spec_utils.LABEL_STATE] = spec_utils.STOPPED
        log_uri = None
        if start:
            os.makedirs(self.settings.log_dir, exist_ok=True)
            log_uri = "file://" + self.log_path
        self._ensure_names_file()
        env_file = self._write_env_file()
        try:
            options = spec_utils.run_options(self.spec, labels, self.netns_path, env_file, self.names_path)
            self.containerd.create(self.id, self.spec["image"], options, self.spec["args"] or [], log_uri)
        except ContainerdError:
            # Keep the invariant "a container exists only when its creation succeeded"; the network
            # stays and is reused by the next attempt.
            if start:
                try:
                    self.containerd.delete_task(self.id)
                    self.containerd.delete_container(self.id)
                except ContainerdError:
                    pass
            raise
        finally:
            # ctr has read it into the container's OCI spec; the values must not linger on disk.
            if env_file:
                os.unlink(env_file)

    def _write_env_file(self) -> str | None:
        if not self.env:
            return None
        os.makedirs(self.settings.env_dir, mode=0o700, exist_ok=True)
        if os.path.exists(self.env_path):
            os.unlink(self.env_path)
        descriptor = os.open(self.env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("".join(entry + "\n" for entry in self.env))
        return self.env_path

    def _run(self, _observed: Observed) -> None:
        self._run_container(start=True)

    def _create(self, _observed: Observed) -> None:
        self._run_container(start=False)

    def _start(self, _observed: Observed) -> None:
        os.makedirs(self.settings.log_dir, exist_ok=True)
        self.containerd.start(self.id, "file://" + self.log_path)

    def _set_labels(self, observed: Observed, wanted: dict[str, str]) -> None:
        changes = {key: value for key, value in wanted.items() if observed.labels.get(key, "") != value}
        if changes:
            self.containerd.set_labels(self.id, changes)

    def _label_stopped(self, observed: Observed) -> None:
        self._set_labels(observed, {spec_utils.LABEL_STATE: spec_utils.STOPPED})

    def _label_started(self, observed: Observed) -> None:
        wanted = {spec_utils.LABEL_STATE: ""}
        if self.address:
            wanted[spec_utils.LABEL_ADDRESS] = self.address
        self._set_labels(observed, wanted)
