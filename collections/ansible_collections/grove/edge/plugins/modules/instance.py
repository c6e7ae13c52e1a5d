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
      - C(absent) removes task, container with its snapshot, network attachment, network namespace, log
        file and hosts file. It also cleans up an instance left half-created or half-removed.
    type: str
    choices: [started, present, stopped, absent]
    default: started
  spec:
    description:
      - What the instance runs, as one object. M(grove.edge.descriptor) returns it per service
        (RV(grove.edge.descriptor#module:specs)), built from the deployment descriptor.
      - A changed spec (or environment) recreates the instance.
      - Required unless I(state=absent).
    type: dict
    suboptions:
      image:
        description:
          - Image reference, for example C(docker.io/library/nginx:latest). Short names are normalised the
            way Docker does (C(nginx) is C(docker.io/library/nginx:latest)).
          - Pulled through containerd when missing, using the registry configuration in I(hosts_dir).
        type: str
        required: true
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
        description: Limit of the traffic into the instance in kbit/s (CNI C(bandwidth)); 0 means none.
        type: int
        default: 0
      bandwidth_out:
        description: Limit of the traffic out of the instance in kbit/s (CNI C(bandwidth)); 0 means none.
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
            C(grove.resources.*), C(grove.ports), C(grove.spec-hash), C(grove.spec), C(grove.env-digest),
            C(grove.address), C(grove.one_shot), C(grove.state)) may only be given with the value the
            module would set.
        type: dict
        default: {}
  env:
    description:
      - Environment entries C(NAME=value), added to the image's environment.
      - They often carry secrets, so they are never logged, never shown in diffs (C(NAME=********)),
        never put on a command line or in a label. They reach containerd through a file of mode 0600
        that is removed again once containerd has read it; a salted digest in the C(grove.env-digest)
        label detects a change.
    type: list
    elements: str
    default: []
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
  mtu:
    description:
      - MTU of the instance's interface and the bridge; 0 leaves the kernel's default.
      - Across workers over the C(grove_network) VXLAN overlay, give the overlay's MTU
        (RV(grove.edge.node_info#module:node.network.mtu)).
    type: int
    default: 0
  names_dir:
    description:
      - Directory of the instances' hosts files. Each instance's C(<names_dir>/<id>) is bind-mounted
        read-only at C(/etc/hosts) in the container; M(grove.edge.service_names) writes the names of
        the application's services into it.
    type: path
    default: /run/grove/hosts
  cni_bin_dir:
    description: Directory of the CNI plugins. Default C(/usr/lib/cni) when it exists, else C(/opt/cni/bin).
    type: path
  hosts_dir:
    description:
      - Registry host configuration directory for pulls (C(ctr images pull --hosts-dir)).
      - Default C(<containerd_config_dir>/certs.d), where the C(containerd) role writes the mirrors.
    type: path
  containerd_config_dir:
    description: containerd's configuration directory.
    type: path
    default: /etc/containerd
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
    description: Shows the recorded configuration before and the desired one after, environment values masked.
    support: full
  action_group:
    description: Use C(group/grove.edge.worker) in C(module_defaults) to set the worker settings once.
    support: full
    membership: [grove.edge.worker]
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
    spec:
      image: docker.io/library/nginx:latest
      memory: 100
      vcpus: 1
      ports: "6080:80/tcp"
    env:
      - NGINX_PORT=80
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
      description:
        - Oakestra's status name, and only ever one of them (its clients refuse others).
        - RUNNING, CREATING, CREATED (the container exists without a task, C(state=stopped)), DEAD,
          COMPLETED, FAILED, UNDEPLOYED.
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
from ansible_collections.grove.edge.plugins.module_utils import _instance as spec_utils
from ansible_collections.grove.edge.plugins.module_utils import _lifecycle as lifecycle
from ansible_collections.grove.edge.plugins.module_utils._containerd import ContainerdError

ARGUMENT_SPEC = {
    "service": {"type": "str", "required": True},
    "instance_number": {"type": "int", "required": True},
    "state": {"type": "str", "default": "started", "choices": ["started", "present", "stopped", "absent"]},
    "spec": {"type": "dict", "options": spec_utils.SPEC_OPTIONS},
    "env": {"type": "list", "elements": "str", "default": [], "no_log": True},
    "namespace": {"type": "str", "default": "grove"},
    "subnet": {"type": "str", "default": "10.18.0.0/24"},
    "bridge": {"type": "str", "default": "grove0"},
    "routes": {"type": "list", "elements": "str", "default": ["0.0.0.0/0"]},
    "mtu": {"type": "int", "default": 0},
    "names_dir": {"type": "path", "default": "/run/grove/hosts"},
    "cni_bin_dir": {"type": "path"},
    "hosts_dir": {"type": "path"},
    "containerd_config_dir": {"type": "path", "default": "/etc/containerd"},
    "containerd_address": {"type": "path", "default": "/run/containerd/containerd.sock"},
    "log_dir": {"type": "path", "default": "/var/log/grove"},
    "pull_timeout": {"type": "int", "default": 300},
    "stop_timeout": {"type": "float", "default": 10},
}


def settings_of(params: dict) -> lifecycle.Settings:
    """The worker settings; raises SpecError for values no instance could use."""
    if not spec_utils.NAMESPACE_PATTERN.fullmatch(params["namespace"]):
        raise spec_utils.SpecError(
            "namespace {!r} is not a valid containerd namespace".format(params["namespace"])
        )
    try:
        subnet = ipaddress.ip_network(params["subnet"])
        for route in params["routes"]:
            ipaddress.ip_network(route)
    except ValueError as exc:
        raise spec_utils.SpecError(str(exc)) from exc
    if subnet.version != 4:
        raise spec_utils.SpecError(f"subnet {subnet} is not an IPv4 network")
    if params["mtu"] and not 576 <= params["mtu"] <= 65535:
        raise spec_utils.SpecError("mtu {} is not between 576 and 65535".format(params["mtu"]))
    return lifecycle.Settings(
        namespace=params["namespace"],
        containerd_address=params["containerd_address"],
        cni_bin_dir=params["cni_bin_dir"] or "",
        hosts_dir=params["hosts_dir"] or os.path.join(params["containerd_config_dir"], "certs.d"),
        log_dir=params["log_dir"],
        subnet=params["subnet"],
        bridge=params["bridge"],
        routes=tuple(params["routes"]),
        mtu=params["mtu"],
        names_dir=params["names_dir"],
        pull_timeout=params["pull_timeout"],
        stop_timeout=params["stop_timeout"],
    )


def describe(observed: lifecycle.Observed) -> dict:
    """The diff's `before`: the recorded configuration (environment masked) and the state."""
    if not observed.container:
        return {"state": "absent"}
    status = spec_utils.status(observed.container, observed.task)
    recorded = spec_utils.recorded_spec(observed.container) or {}
    description = dict(recorded, state="started" if status in ("RUNNING", "COMPLETED", "DEAD") else "stopped")
    description["spec_hash"] = observed.labels.get(spec_utils.LABEL_SPEC_HASH, "")
    description["status"] = status
    return description


def undeployed(instance: lifecycle.Lifecycle) -> dict:
    return {
        "id": instance.id,
        "service": instance.service,
        "instance_number": instance.number,
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


def run_module(module: AnsibleModule) -> None:
    params = module.params
    state = "started" if params["state"] == "present" else params["state"]
    name = "instance {}.instance.{}".format(params["service"], params["instance_number"])
    try:
        spec_utils.check_service(params["service"])
        if params["instance_number"] < 0:
            raise spec_utils.SpecError("instance_number must not be negative")
        settings = settings_of(params)
        network = {
            "subnet": settings.subnet,
            "bridge": settings.bridge,
            "routes": list(settings.routes),
            "mtu": settings.mtu,
        }
        env = spec_utils.environment(params["env"])
        spec = spec_utils.desired_spec(params["spec"], env, network) if state != "absent" else None
    except spec_utils.SpecError as exc:
        module.fail_json(msg=f"{name}: invalid options: {exc}")
    instance = lifecycle.Lifecycle(
        lambda argv, data=None, env=None: module.run_command(
            # expand_user_and_vars=False: values are data; "$HOME" in an argument stays "$HOME".
            argv,
            data=data,
            environ_update=env,
            expand_user_and_vars=False,
        ),
        settings,
        params["service"],
        params["instance_number"],
        check_mode=module.check_mode,
    )
    name = f"instance {instance.id}"
    try:
        observed = instance.observe(for_removal=state == "absent")
        if state == "absent":
            steps = lifecycle.plan_absent(observed)
            after = {"state": "absent"}
        else:
            wanted_hash = instance.want(spec, env, observed)
            steps = lifecycle.plan_present(
                observed,
                start=state == "started",
                wanted_hash=wanted_hash,
                one_shot=spec["one_shot"],
                image=spec["image"],
            )
            after = dict(
                spec,
                state=state,
                spec_hash=wanted_hash,
                status="RUNNING" if state == "started" else "CREATED",
            )
    except ContainerdError as exc:
        module.fail_json(msg=f"{name}: inspect: {exc}", stdout=exc.stdout, stderr=exc.stderr)
    except spec_utils.SpecError as exc:
        module.fail_json(msg=f"{name}: invalid options: {exc}")
    before = describe(observed)
    try:
        instance.apply(steps, observed)
    except lifecycle.StepFailed as exc:
        module.fail_json(
            msg=f"{name}: {exc.step}: {exc}",
            stdout=exc.stdout,
            stderr=exc.stderr,
            actions=instance.actions,
            changed=instance.completed > 0,
        )
    changed = bool(instance.actions)
    final = observed
    if changed and not module.check_mode:
        try:
            final = instance.observe()
        except ContainerdError as exc:
            module.fail_json(msg=f"{name}: inspect: {exc}", changed=True, actions=instance.actions)
    module.exit_json(
        changed=changed,
        diff={"before": before, "after": after if changed else before},
        actions=instance.actions,
        instance=spec_utils.facts(final.container, final.task) if final.container else undeployed(instance),
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", state, ("spec",)) for state in ("started", "present", "stopped")],
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
