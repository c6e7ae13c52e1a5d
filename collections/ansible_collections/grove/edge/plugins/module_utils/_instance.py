# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Grove service instance should look like on a worker, and how to read it back.

The containers are the record: everything node_info reports is read back from the labels the
instance module put on them, so a worker can be inspected without any other state.

The environment is kept apart from everything else: its values carry passwords in real
descriptors, so they reach the container only through a file of mode 0600 that containerd reads
into the OCI spec. Labels, diffs and results hold the variable names and a salted digest only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from ansible_collections.grove.edge.plugins.module_utils import _descriptor
from ansible_collections.grove.edge.plugins.module_utils._ports import (
    PortError,
    format_ports,
    parse_ports,
)

# The container id belongs to an instance's spec; the instance module and its tests take it from here.
MAX_ID_LENGTH = _descriptor.MAX_ID_LENGTH
instance_id = _descriptor.instance_id

NETWORK_NAME = "grove"
LABEL_SERVICE = "grove.service"
LABEL_INSTANCE = "grove.instance"
LABEL_PORTS = "grove.ports"
LABEL_SPEC_HASH = "grove.spec-hash"
LABEL_SPEC = "grove.spec"
LABEL_ENV_DIGEST = "grove.env-digest"
LABEL_ADDRESS = "grove.address"
LABEL_ONE_SHOT = "grove.one_shot"
LABEL_STATE = "grove.state"
RESOURCE_LABELS = {
    "vcpus": "grove.resources.vcpus",
    "memory": "grove.resources.memory",
    "vgpus": "grove.resources.vgpus",
    "storage": "grove.resources.storage",
}
# containerd rejects a label whose key and value together exceed this many bytes.
MAX_LABEL_SIZE = 4096
# containerd namespaces follow the same rules as its identifiers.
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
STOPPED = "stopped"
MASK = "********"

# The `spec` option of grove.edge.instance: what grove.edge.descriptor returns per service
# (_descriptor.Microservice.instance_spec) and what the instance module validates, in one place.
SPEC_OPTIONS = {
    "image": {"type": "str", "required": True},
    "cmd": {"type": "list", "elements": "str", "default": []},
    "args": {"type": "list", "elements": "str", "default": []},
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
}


class SpecError(ValueError):
    """An option value that cannot describe an instance."""


def check_service(service: str) -> None:
    parts = service.split(".")
    if len(parts) != 4 or not all(_descriptor.NAME_PATTERN.fullmatch(part) for part in parts):
        raise SpecError(
            f"service {service!r} must be app.appns.service.servicens, each part 1 to 30 letters or digits"
        )


def normalize_image(ref: str) -> str:
    """Docker's reference normalisation: `nginx` -> `docker.io/library/nginx:latest`."""
    ref = ref.strip()
    if not ref or ref.startswith("-") or any(char.isspace() for char in ref):
        raise SpecError(f"{ref!r} is not an image reference")
    name, at, digest = ref.partition("@")
    first, slash, _rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + (name if slash else "library/" + name)
    elif first == "index.docker.io":
        name = "docker.io/" + name[len(first) + 1 :]
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = "docker.io/library/" + name[len("docker.io/") :]
    last = name.rsplit("/", 1)[-1]
    if not at and ":" not in last:
        name += ":latest"
    return name + (at + digest if at else "")


def process_args(cmd: list[str], args: list[str]) -> list[str] | None:
    """cmd+args when cmd is given, else args, else None for the image's own entrypoint and cmd."""
    if cmd:
        return list(cmd) + list(args)
    if args:
        return list(args)
    return None


def environment(entries: list[str]) -> list[str]:
    """The entries, validated by the descriptor's rule, one per name (a later entry wins)."""
    merged: dict[str, str] = {}
    for entry in entries:
        problem = _descriptor.environment_problem(entry)
        if problem:
            raise SpecError(f"env entry for {entry.partition('=')[0]!r} {problem}")
        name, _equals, value = entry.partition("=")
        merged[name] = value
    return [f"{name}={value}" for name, value in merged.items()]


def masked(entries: list[str]) -> list[str]:
    return [entry.partition("=")[0] + "=" + MASK for entry in entries]


def desired_spec(spec: dict, env: list[str], network: dict) -> dict:
    """The instance's desired configuration: everything whose change needs a new container.

    `env` appears only masked; its values enter the comparison through env_digest.
    """
    for key in ("memory", "vcpus", "vgpus", "storage", "bandwidth_in", "bandwidth_out"):
        if spec[key] < 0:
            raise SpecError(f"{key} must not be negative")
    try:
        ports = format_ports(parse_ports(spec["ports"] or ""))
    except PortError as exc:
        raise SpecError(f"ports: {exc}") from exc
    return {
        "image": normalize_image(spec["image"]),
        "args": process_args(spec["cmd"], spec["args"]),
        "env": masked(env),
        "resources": {
            "memory": int(spec["memory"]),
            "vcpus": float(spec["vcpus"]),
            "vgpus": int(spec["vgpus"]),
            "storage": int(spec["storage"]),
        },
        "ports": ports,
        "bandwidth": {"in": int(spec["bandwidth_in"]), "out": int(spec["bandwidth_out"])},
        "privileged": bool(spec["privileged"]),
        "one_shot": bool(spec["one_shot"]),
        # Label values are strings in containerd; YAML may well hand over numbers or booleans.
        "labels": {str(key): str(value) for key, value in sorted((spec["labels"] or {}).items())},
        "network": {
            "subnet": network["subnet"],
            "bridge": network["bridge"],
            "routes": list(network["routes"]),
            "mtu": int(network.get("mtu", 0)),
            # The names of the application's services, in /etc/hosts (bind-mounted at creation).
            "etc_hosts": True,
        },
    }


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def new_salt() -> str:
    return os.urandom(16).hex()


def env_digest(env: list[str], salt: str) -> str:
    """`salt:sha256` of the environment: detects a change without keeping the values anywhere."""
    digest = hashlib.sha256((salt + canonical_json(env)).encode()).hexdigest()
    return f"{salt}:{digest}"


def recorded_salt(container: dict | None) -> str:
    recorded = (container or {}).get("labels", {}).get(LABEL_ENV_DIGEST, "")
    salt, colon, _digest = recorded.partition(":")
    return salt if colon and salt else ""


def spec_hash(spec: dict, digest: str = "") -> str:
    return hashlib.sha256((canonical_json(spec) + digest).encode()).hexdigest()[:24]


def format_number(value: float) -> str:
    return (f"{value:f}").rstrip("0").rstrip(".") or "0"


def managed_labels(service: str, instance_number: int, spec: dict, digest: str) -> dict[str, str]:
    labels = {
        LABEL_SERVICE: service,
        LABEL_INSTANCE: str(instance_number),
        LABEL_PORTS: spec["ports"],
        LABEL_SPEC_HASH: spec_hash(spec, digest),
        LABEL_ENV_DIGEST: digest,
    }
    for key, label in RESOURCE_LABELS.items():
        value = spec["resources"][key]
        labels[label] = format_number(value) if isinstance(value, float) else str(value)
    if spec["one_shot"]:
        labels[LABEL_ONE_SHOT] = "true"
    text = canonical_json(spec)
    # The full spec only serves diffs; an instance with a huge command line goes without it.
    if len(LABEL_SPEC) + len(text.encode()) <= MAX_LABEL_SIZE:
        labels[LABEL_SPEC] = text
    return labels


def container_labels(service: str, instance_number: int, spec: dict, digest: str) -> dict[str, str]:
    """User labels plus the ones Grove manages; a user label may not contradict a managed one."""
    managed = managed_labels(service, instance_number, spec, digest)
    reserved = set(managed) | {
        LABEL_ADDRESS,
        LABEL_STATE,
        LABEL_ONE_SHOT,
        LABEL_SPEC,
        LABEL_ENV_DIGEST,
        *RESOURCE_LABELS.values(),
    }
    labels = dict(spec["labels"])
    for key, value in labels.items():
        if key in reserved and managed.get(key) != value:
            raise SpecError(f"label {key} is set by the module itself and cannot be given as {value!r}")
        if len(key.encode()) + len(str(value).encode()) > MAX_LABEL_SIZE:
            raise SpecError(f"label {key} is longer than containerd allows ({MAX_LABEL_SIZE} bytes)")
    labels.update(managed)
    return labels


def run_options(
    spec: dict, labels: dict[str, str], netns_path: str, env_file: str | None, hosts_file: str | None = None
) -> list[str]:
    """ctr run / ctr containers create options for the spec (everything but image, id, args)."""
    options = ["--with-ns", "network:" + netns_path]
    if hosts_file:
        options += ["--mount", f"type=bind,src={hosts_file},dst=/etc/hosts,options=rbind:ro"]
    resources = spec["resources"]
    if resources["memory"] > 0:
        options += ["--memory-limit", str(resources["memory"] * 1024 * 1024)]
    if resources["vcpus"] > 0:
        options += ["--cpus", format_number(resources["vcpus"])]
    if spec["privileged"]:
        options.append("--privileged")
    for key, value in sorted(labels.items()):
        options += ["--label", f"{key}={value}"]
    if env_file:
        options += ["--env-file", env_file]
    return options


def recorded_spec(container: dict | None) -> dict | None:
    if container is None:
        return None
    try:
        spec = json.loads(container["labels"].get(LABEL_SPEC, ""))
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def status(container: dict | None, task: dict | None) -> str:
    """Oakestra's status name for what containerd shows."""
    if container is None:
        return "UNDEPLOYED"
    labels = container.get("labels", {})
    if task is None:
        # Oakestra has no STOPPED: a container made but not running is CREATED in its words.
        return "CREATED" if labels.get(LABEL_STATE) == STOPPED else "CREATING"
    state = task["status"]
    if state in ("RUNNING", "PAUSED", "PAUSING"):
        return "RUNNING"
    if state == "CREATED":
        return "CREATING"
    if state == "STOPPED":
        if task.get("exit_status") == 0 and labels.get(LABEL_ONE_SHOT) == "true":
            return "COMPLETED"
        return "DEAD"
    return "FAILED"


def _number(text: str | None, kind: type) -> float | int:
    try:
        return kind(text)
    except (TypeError, ValueError):
        return kind(0)


def recorded_ports(container: dict) -> list:
    """The port mappings the container was made with (its ports label), or none if unreadable."""
    try:
        return parse_ports(container.get("labels", {}).get(LABEL_PORTS, ""))
    except PortError:
        return []


def facts(container: dict, task: dict | None) -> dict:
    """What node_info and the instance module report about one instance."""
    labels = container.get("labels", {})
    instance_number = labels.get(LABEL_INSTANCE, "")
    stopped = task is not None and task["status"] == "STOPPED"
    return {
        "id": container["id"],
        "service": labels.get(LABEL_SERVICE, ""),
        "instance_number": int(instance_number) if instance_number.isdigit() else None,
        "status": status(container, task),
        "task_status": task["status"] if task else None,
        "exit_status": task["exit_status"] if stopped else None,  # type: ignore[index]
        "address": labels.get(LABEL_ADDRESS, ""),
        "ports": labels.get(LABEL_PORTS, ""),
        "host_ports": [mapping.host_key for mapping in recorded_ports(container)],
        "pid": task["pid"] if task and not stopped else None,
        "image": container.get("image", ""),
        "one_shot": labels.get(LABEL_ONE_SHOT) == "true",
        "resources": {
            "vcpus": _number(labels.get(RESOURCE_LABELS["vcpus"]), float),
            "memory": _number(labels.get(RESOURCE_LABELS["memory"]), int),
            "vgpus": _number(labels.get(RESOURCE_LABELS["vgpus"]), int),
            "storage": _number(labels.get(RESOURCE_LABELS["storage"]), int),
        },
    }
