#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: instance
short_description: Ensure one Grove service instance on a worker (containerd task with a CNI network)
version_added: 0.1.0
author: Grove developers (@grove)
description:
  - Runs one instance of an Oakestra-style service on the target host with containerd.
  - The container is named C(app.appns.svc.svcns.instance.N) and lives in its own network namespace
    (C(/var/run/netns/<id>)), attached by running the CNI plugins C(bridge) (with C(host-local) IPAM),
    C(portmap) and, when limits are given, C(bandwidth) directly. The CNI result and the exact
    configuration are cached in libcni's format under C(/var/lib/cni/results/grove-<id>-eth0), so removal
    replays exactly what was set up.
  - The desired configuration is recorded in container labels, including a hash of it; a changed
    configuration recreates the instance.
  - Needs root, containerd, C(ctr), C(ip) and the CNI plugins on the target.
options:
  service:
    description: Fully qualified service name C(app.appns.service.servicens).
    type: str
    required: true
  instance_number:
    description: Number of the instance within the service.
    type: int
    required: true
  state:
    description:
      - C(started) (or its alias C(present)) runs the instance; a task that exited or died is deleted and
        started again, except a one-shot task that exited with status 0.
      - C(stopped) keeps the container and its network but no task (SIGTERM, then SIGKILL after
        I(stop_timeout)).
      - C(absent) removes task, container with its snapshot, network attachment, network namespace and log
        file. It also cleans up an instance left half-created or half-removed.
    type: str
    choices: [started, present, stopped, absent]
    default: started
  image:
    description:
      - Image reference, for example C(docker.io/library/nginx:latest). Short names are normalised the way
        Docker does (C(nginx) is C(docker.io/library/nginx:latest)).
      - Pulled through containerd when missing, using the registry configuration in I(hosts_dir).
      - Required unless I(state=absent).
    type: str
  cmd:
    description:
      - Command; the process runs I(cmd) followed by I(args).
      - Empty means the image's entrypoint and cmd.
    type: list
    elements: str
    default: []
  args:
    description: Arguments. Without I(cmd) they replace the image's entrypoint and cmd as a whole.
    type: list
    elements: str
    default: []
  env:
    description: Environment entries C(NAME=value), added to the image's environment.
    type: list
    elements: str
    default: []
  memory:
    description: Memory limit in MB; 0 means no limit.
    type: int
    default: 0
  vcpus:
    description: CPU limit in cores (CFS quota); 0 means no limit.
    type: float
    default: 0
  vgpus:
    description: GPUs asked for; recorded in the labels only.
    type: int
    default: 0
  storage:
    description: Storage asked for in MB; recorded in the labels only.
    type: int
    default: 0
  ports:
    description:
      - Published ports in the descriptor syntax C(host:container[/tcp|udp];...).
      - A single number maps a port to itself.
    type: str
    default: ""
  bandwidth_in:
    description: Limit of the traffic into the instance in kbit/s (CNI C(bandwidth) plugin); 0 means none.
    type: int
    default: 0
  bandwidth_out:
    description: Limit of the traffic out of the instance in kbit/s (CNI C(bandwidth) plugin); 0 means none.
    type: int
    default: 0
  privileged:
    description: Run the container privileged.
    type: bool
    default: false
  one_shot:
    description: The task is meant to finish; an exit with status 0 is C(COMPLETED) and is not restarted.
    type: bool
    default: false
  labels:
    description:
      - Extra container labels. Labels the module manages (C(grove.service), C(grove.instance),
        C(grove.resources.*), C(grove.ports), C(grove.spec-hash), C(grove.spec), C(grove.address),
        C(grove.one_shot), C(grove.state)) may only be given with the value the module would set.
    type: dict
    default: {}
  namespace:
    description: containerd namespace of the instances.
    type: str
    default: grove
  subnet:
    description: Instance subnet of this worker (host-local IPAM range of the C(grove) network).
    type: str
    default: 10.18.0.0/24
  bridge:
    description: Name of the bridge the instances attach to.
    type: str
    default: grove0
  routes:
    description: Destinations routed through the bridge from inside the instance.
    type: list
    elements: str
    default: [0.0.0.0/0]
  cni_bin_dir:
    description: Directory of the CNI plugins. Default C(/usr/lib/cni) when it exists, else C(/opt/cni/bin).
    type: path
  hosts_dir:
    description: Registry host configuration directory for pulls (C(ctr images pull --hosts-dir)).
    type: path
    default: /etc/containerd/certs.d
  containerd_address:
    description: containerd's socket.
    type: path
    default: /run/containerd/containerd.sock
  log_dir:
    description: The task's stdout and stderr go to C(<log_dir>/<id>.log).
    type: path
    default: /var/log/grove
  pull_timeout:
    description: Seconds an image pull may take.
    type: int
    default: 300
  stop_timeout:
    description: Seconds between SIGTERM and SIGKILL when stopping.
    type: float
    default: 10
attributes:
  check_mode:
    description: Reports what would change without changing anything.
    support: full
  diff_mode:
    description: Shows the recorded configuration before and the desired one after.
    support: full
notes:
  - Runs on the worker host as root. Only the Python standard library is needed there.
  - Ids longer than containerd's 76 characters are shortened with a hash; C(grove.service) and
    C(grove.instance) labels still name the instance.
"""

EXAMPLES = r"""
- name: Run instance 1 of the nginx service
  grove.edge.instance:
    service: clientsrvr.test.nginx.test
    instance_number: 1
    image: docker.io/library/nginx:latest
    memory: 100
    vcpus: 1
    ports: "6080:80/tcp"
    subnet: 10.18.1.0/24

- name: Remove it again
  grove.edge.instance:
    service: clientsrvr.test.nginx.test
    instance_number: 1
    state: absent
"""

RETURN = r"""
instance:
  description: The instance as it is after the module ran (in check mode, as it was found).
  returned: always
  type: dict
  contains:
    id:
      description: containerd container id
      type: str
    service:
      description: Fully qualified service name
      type: str
    instance_number:
      description: Instance number
      type: int
    status:
      description: Oakestra status name (RUNNING, CREATING, STOPPED, DEAD, COMPLETED, FAILED, UNDEPLOYED).
      type: str
    task_status:
      description: containerd's task status, or null without a task
      type: str
    exit_status:
      description: Exit status of a stopped task, else null
      type: int
    address:
      description: The instance's address on the worker's instance subnet
      type: str
    ports:
      description: Published ports, normalised
      type: str
    host_ports:
      description: Published host ports as C(port/protocol)
      type: list
      elements: str
    pid:
      description: Host pid of the running task, else null
      type: int
    image:
      description: Image reference
      type: str
    one_shot:
      description: Whether the instance is one-shot
      type: bool
    resources:
      description: vcpus, memory (MB), vgpus and storage (MB) as recorded
      type: dict
  sample:
    id: clientsrvr.test.nginx.test.instance.1
    service: clientsrvr.test.nginx.test
    instance_number: 1
    status: RUNNING
    task_status: RUNNING
    exit_status: null
    address: 10.18.1.2
    ports: "6080:80/tcp"
    host_ports: [6080/tcp]
    pid: 4242
    image: docker.io/library/nginx:latest
    one_shot: false
    resources: {vcpus: 1.0, memory: 100, vgpus: 0, storage: 0}
actions:
  description: The steps taken (or, in check mode, that would be taken).
  returned: always
  type: list
  elements: str
  sample:
    - pull image docker.io/library/nginx:latest
    - create network namespace
    - attach network (CNI ADD)
    - run container
"""

# Ansible modules keep their documentation first, so imports follow it.
import ipaddress
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils import _cni as cni_utils
from ansible_collections.grove.edge.plugins.module_utils import _instance as spec_utils
from ansible_collections.grove.edge.plugins.module_utils._cni import Attachment, Cni, CniError
from ansible_collections.grove.edge.plugins.module_utils._containerd import (
    Containerd,
    ContainerdError,
)
from ansible_collections.grove.edge.plugins.module_utils._descriptor import (
    DescriptorError,
    parse_ports,
)

NETNS_DIR = "/var/run/netns"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
# portmap tears down by chain names derived from the container id, but does nothing at all
# unless it is given some mapping: this one stands in when the real ones are unknown.
PLACEHOLDER_PORTS = [{"hostPort": 1, "containerPort": 1, "protocol": "tcp"}]


class StepFailed(Exception):
    def __init__(self, step: str, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.stdout = stdout
        self.stderr = stderr


class Observed:
    """What exists of the instance on the host."""

    def __init__(self, manager: InstanceManager) -> None:
        self.container = manager.containerd.container(manager.id)
        self.task = manager.containerd.task(manager.id)
        self.cache = manager.cni.cached(spec_utils.NETWORK_NAME, manager.id)
        self.netns = os.path.exists(manager.netns_path)
        self.ipam = manager.cni.ipam_allocations(spec_utils.NETWORK_NAME, manager.id)

    @property
    def labels(self) -> dict:
        return self.container["labels"] if self.container else {}


class InstanceManager:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.params = params
        self.state = "started" if params["state"] == "present" else params["state"]
        self.service = params["service"]
        self.number = params["instance_number"]
        self.actions: list[str] = []
        self.completed = 0
        try:
            spec_utils.check_service(self.service)
            if self.number < 0:
                raise spec_utils.SpecError("instance_number must not be negative")
            if not spec_utils.NAMESPACE_PATTERN.fullmatch(params["namespace"]):
                raise spec_utils.SpecError(
                    "namespace {!r} is not a valid containerd namespace".format(params["namespace"])
                )
            self.ports = parse_ports(params["ports"] or "")
            self._check_network_options()
        except (spec_utils.SpecError, DescriptorError) as exc:
            module.fail_json(msg=f"instance {self.service}.instance.{self.number}: invalid options: {exc}")
        self.id = spec_utils.instance_id(self.service, self.number)
        self.netns_path = os.path.join(NETNS_DIR, self.id)
        self.log_path = os.path.join(params["log_dir"], self.id + ".log")
        self.containerd = Containerd(self._run, params["containerd_address"], params["namespace"])
        bin_dir = params["cni_bin_dir"] or next(
            (d for d in CNI_BIN_DIRS if os.path.isdir(d)), CNI_BIN_DIRS[-1]
        )
        self.cni = Cni(self._run, bin_dir)
        self.spec: dict = {}
        self.labels: dict[str, str] = {}
        self.address = ""
        if self.state != "absent":
            try:
                self.spec = spec_utils.desired_spec(params, self.ports)
                self.labels = spec_utils.container_labels(self.service, self.number, self.spec)
            except spec_utils.SpecError as exc:
                self.fail("invalid options", str(exc))

    def _check_network_options(self) -> None:
        try:
            subnet = ipaddress.ip_network(self.params["subnet"])
            for route in self.params["routes"]:
                ipaddress.ip_network(route)
        except ValueError as exc:
            raise spec_utils.SpecError(str(exc)) from exc
        if subnet.version != 4:
            raise spec_utils.SpecError(f"subnet {subnet} is not an IPv4 network")

    # --- plumbing ----------------------------------------------------------------------------

    def _run(self, argv: list[str], data: str | None = None, env: dict | None = None) -> tuple[int, str, str]:
        # expand_user_and_vars=False: values are data; "$HOME" in an argument stays "$HOME".
        return self.module.run_command(argv, data=data, environ_update=env, expand_user_and_vars=False)

    def fail(self, step: str, message: str, stdout: str = "", stderr: str = "") -> None:
        self.module.fail_json(
            msg=f"instance {self.id}: {step}: {message}",
            stdout=stdout,
            stderr=stderr,
            actions=self.actions,
            changed=self.completed > 0,
        )

    def step(self, description: str, function, *args) -> None:
        """Record an action; carry it out unless in check mode."""
        self.actions.append(description)
        if self.module.check_mode:
            return
        try:
            function(*args)
        except (ContainerdError, CniError, StepFailed) as exc:
            message = str(exc)
            if isinstance(exc, ContainerdError) and message.startswith(exc.step + ": "):
                message = message[len(exc.step) + 2 :]
            self.fail(description, message, getattr(exc, "stdout", ""), getattr(exc, "stderr", ""))
        except OSError as exc:
            self.fail(description, str(exc))
        self.completed += 1

    def observe(self) -> Observed:
        try:
            return Observed(self)
        except ContainerdError as exc:
            self.fail("inspect", str(exc))
            raise  # unreachable: fail_json exits

    def command(self, what: str, argv: list[str]) -> None:
        rc, stdout, stderr = self._run(argv)
        if rc != 0:
            raise StepFailed(what, stderr.strip() or f"exit status {rc}", stdout, stderr)

    # --- network -----------------------------------------------------------------------------

    def conflist(self, with_bandwidth: bool) -> dict:
        return cni_utils.network_config(
            spec_utils.NETWORK_NAME,
            self.params["bridge"],
            self.params["subnet"],
            self.params["routes"],
            with_bandwidth,
        )

    def capability_args(self) -> dict:
        args: dict = {"portMappings": cni_utils.port_mappings(self.ports)}
        limits = cni_utils.bandwidth_limits(self.params["bandwidth_in"], self.params["bandwidth_out"])
        if limits:
            args["bandwidth"] = limits
        return args

    def detach_network(self, observed: Observed) -> None:
        netns = self.netns_path if observed.netns else ""
        if observed.cache:
            self.step("detach network (CNI DEL)", self.cni.delete_cached, observed.cache, self.id, netns)
        elif observed.netns or observed.ipam:
            # No cache (a crash between CNI ADD and writing it): DEL with the best knowledge at hand.
            known = spec_utils.parse_ports_label(observed.labels.get(spec_utils.LABEL_PORTS, ""))
            ports = (
                [
                    {
                        "hostPort": p["host_port"],
                        "containerPort": p["container_port"],
                        "protocol": p["protocol"],
                    }
                    for p in known
                ]
                or cni_utils.port_mappings(self.ports)
                or PLACEHOLDER_PORTS
            )
            self.step(
                "detach network (CNI DEL without cache)",
                self.cni.delete,
                self.conflist(True),
                Attachment(self.id, netns),
                {"portMappings": ports},
                None,
            )
        if observed.netns:
            self.step(
                "delete network namespace",
                self.command,
                "ip netns delete",
                ["ip", "netns", "delete", self.id],
            )
        if self.module.check_mode and (observed.cache or observed.netns or observed.ipam):
            return  # the DEL above may well remove them; in check mode there is no way to tell
        rules = self.cni.leftover_nat_rules(spec_utils.NETWORK_NAME, self.id)
        if rules:
            self.step(f"remove {len(rules)} leftover NAT rules", self.cni.remove_nat_rules, rules)

    def attach_network(self, observed: Observed) -> None:
        """Make sure the network namespace exists and is attached; leaves self.address set."""
        self.address = cni_utils.container_address(observed.cache["result"]) if observed.cache else ""
        if observed.netns and observed.cache:
            return
        if observed.cache or observed.ipam or observed.netns:
            # Stale attachment (the namespace went away, e.g. with a reboot, or ADD never finished).
            self.detach_network(observed)
        self.step("create network namespace", self.command, "ip netns add", ["ip", "netns", "add", self.id])
        self.step("attach network (CNI ADD)", self._cni_add)

    def _cni_add(self) -> None:
        with_bandwidth = self.spec["bandwidth"]["in"] > 0 or self.spec["bandwidth"]["out"] > 0
        attachment = Attachment(self.id, self.netns_path)
        result = self.cni.add(self.conflist(with_bandwidth), attachment, self.capability_args())
        self.address = cni_utils.container_address(result)

    # --- containerd --------------------------------------------------------------------------

    def ensure_image(self) -> None:
        image = self.spec["image"]
        present = False
        try:
            present = self.containerd.image_present(image)
        except ContainerdError as exc:
            self.fail("inspect image", str(exc))
        if not present:
            self.step(
                f"pull image {image}",
                self.containerd.pull,
                image,
                self.params["hosts_dir"],
                self.params["pull_timeout"],
            )

    def log_uri(self) -> str:
        return "file://" + self.log_path

    def _create(self, start: bool) -> None:
        labels = dict(self.labels)
        if self.address:
            labels[spec_utils.LABEL_ADDRESS] = self.address
        if not start:
            labels[spec_utils.LABEL_STATE] = spec_utils.STOPPED
        options = spec_utils.run_options(self.spec, labels, self.netns_path)
        if start:
            os.makedirs(self.params["log_dir"], exist_ok=True)
        try:
            self.containerd.create(
                self.id,
                self.spec["image"],
                options,
                self.spec["args"] or [],
                self.log_uri() if start else None,
            )
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

    def _start(self) -> None:
        os.makedirs(self.params["log_dir"], exist_ok=True)
        self.containerd.start(self.id, self.log_uri())

    def remove_container(self, observed: Observed, why: str = "") -> None:
        if observed.task:
            if observed.task["status"] != "STOPPED":
                self.step(why + "stop task", self.containerd.stop, self.id, self.params["stop_timeout"])
            self.step(why + "delete task", self.containerd.delete_task, self.id)
        if observed.container:
            self.step(why + "delete container", self.containerd.delete_container, self.id)

    def update_labels(self, observed: Observed, wanted: dict[str, str]) -> None:
        changes = {key: value for key, value in wanted.items() if observed.labels.get(key, "") != value}
        if changes:
            self.step(
                "update labels {}".format(", ".join(sorted(changes))),
                self.containerd.set_labels,
                self.id,
                changes,
            )

    # --- states ------------------------------------------------------------------------------

    def absent(self, observed: Observed) -> None:
        self.remove_container(observed)
        if not observed.container:
            leftover = False
            try:
                leftover = self.containerd.snapshot_exists(self.id)
            except ContainerdError as exc:
                self.fail("inspect snapshot", str(exc))
            if leftover:
                self.step("delete snapshot", self.containerd.delete_snapshot, self.id)
        self.detach_network(observed)
        if os.path.exists(self.log_path):
            self.step("delete log file", os.unlink, self.log_path)

    def present(self, observed: Observed, start: bool) -> None:
        wanted_hash = self.labels[spec_utils.LABEL_SPEC_HASH]
        if observed.container and observed.labels.get(spec_utils.LABEL_SPEC_HASH) != wanted_hash:
            self.remove_container(observed, why="configuration changed: ")
            self.detach_network(observed)
            observed.container = observed.task = observed.cache = None
            observed.netns, observed.ipam = False, []
        if not observed.container:
            self.ensure_image()
            self.attach_network(observed)
            self.step("run container" if start else "create container", self._create, start)
            return
        task = observed.task
        if not start:
            if task:
                if task["status"] != "STOPPED":
                    self.step("stop task", self.containerd.stop, self.id, self.params["stop_timeout"])
                self.step("delete task", self.containerd.delete_task, self.id)
            self.update_labels(observed, {spec_utils.LABEL_STATE: spec_utils.STOPPED})
            return
        if task and task["status"] in ("RUNNING", "PAUSED", "PAUSING"):
            return
        if task and task["status"] == "STOPPED" and task["exit_status"] == 0 and self.spec["one_shot"]:
            return  # COMPLETED: a one-shot task that succeeded stays as it is
        if task:
            why = task["status"]
            if why == "STOPPED":
                why = f"exited with status {task['exit_status']}"
            self.step(f"delete task ({why})", self.containerd.delete_task, self.id)
        self.attach_network(observed)
        wanted_labels = {spec_utils.LABEL_STATE: ""}
        if self.address:
            wanted_labels[spec_utils.LABEL_ADDRESS] = self.address
        self.update_labels(observed, wanted_labels)
        self.step("start task", self._start)

    # --- reporting ---------------------------------------------------------------------------

    def describe(self, observed: Observed) -> dict:
        if not observed.container:
            return {"state": "absent"}
        status = spec_utils.status(observed.container, observed.task)
        recorded = spec_utils.recorded_spec(observed.container) or {}
        description = dict(
            recorded, state="started" if status in ("RUNNING", "COMPLETED", "DEAD") else "stopped"
        )
        description["spec_hash"] = observed.labels.get(spec_utils.LABEL_SPEC_HASH, "")
        description["status"] = status
        return description

    def wanted(self) -> dict:
        if self.state == "absent":
            return {"state": "absent"}
        return dict(
            self.spec,
            state=self.state,
            spec_hash=self.labels[spec_utils.LABEL_SPEC_HASH],
            status="RUNNING" if self.state == "started" else "STOPPED",
        )

    def instance_facts(self, observed: Observed) -> dict:
        if observed.container:
            return spec_utils.facts(observed.container, observed.task)
        return {
            "id": self.id,
            "service": self.service,
            "instance_number": self.number,
            "status": "UNDEPLOYED",
            "task_status": None,
            "exit_status": None,
            "address": "",
            "ports": "",
            "host_ports": [],
            "pid": None,
            "image": "",
            "one_shot": False,
            "resources": {},
        }

    def run(self) -> None:
        observed = self.observe()
        before = self.describe(observed)
        if self.state == "absent":
            self.absent(observed)
        else:
            self.present(observed, start=self.state == "started")
        changed = bool(self.actions)
        final = observed if self.module.check_mode or not changed else self.observe()
        after = self.wanted() if changed else before
        self.module.exit_json(
            changed=changed,
            diff={"before": before, "after": after},
            actions=self.actions,
            instance=self.instance_facts(final),
        )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "service": {"type": "str", "required": True},
            "instance_number": {"type": "int", "required": True},
            "state": {
                "type": "str",
                "default": "started",
                "choices": ["started", "present", "stopped", "absent"],
            },
            "image": {"type": "str"},
            "cmd": {"type": "list", "elements": "str", "default": []},
            "args": {"type": "list", "elements": "str", "default": []},
            "env": {"type": "list", "elements": "str", "default": []},
            "memory": {"type": "int", "default": 0},
            "vcpus": {"type": "float", "default": 0},
            "vgpus": {"type": "int", "default": 0},
            "storage": {"type": "int", "default": 0},
            "ports": {"type": "str", "default": ""},
            "bandwidth_in": {"type": "int", "default": 0},
            "bandwidth_out": {"type": "int", "default": 0},
            "privileged": {"type": "bool", "default": False},
            "one_shot": {"type": "bool", "default": False},
            "labels": {"type": "dict", "default": {}},
            "namespace": {"type": "str", "default": "grove"},
            "subnet": {"type": "str", "default": "10.18.0.0/24"},
            "bridge": {"type": "str", "default": "grove0"},
            "routes": {"type": "list", "elements": "str", "default": ["0.0.0.0/0"]},
            "cni_bin_dir": {"type": "path"},
            "hosts_dir": {"type": "path", "default": "/etc/containerd/certs.d"},
            "containerd_address": {"type": "path", "default": "/run/containerd/containerd.sock"},
            "log_dir": {"type": "path", "default": "/var/log/grove"},
            "pull_timeout": {"type": "int", "default": 300},
            "stop_timeout": {"type": "float", "default": 10},
        },
        required_if=[
            ("state", "started", ("image",)),
            ("state", "present", ("image",)),
            ("state", "stopped", ("image",)),
        ],
        supports_check_mode=True,
    )
    InstanceManager(module).run()


if __name__ == "__main__":
    main()
