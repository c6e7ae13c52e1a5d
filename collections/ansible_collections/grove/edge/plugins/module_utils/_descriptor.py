# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Oakestra SLA v2 deployment descriptor: validation and a typed model.

Stdlib only: this file is shipped to targets by Ansible and imported by the Grove API server.
Descriptor values are data. Nothing here evaluates, templates or shell-splits them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass, field

from ansible_collections.grove.edge.plugins.module_utils._ports import (
    PortMapping,
    format_ports,
    parse_ports,
    port_problems,
)

SLA_VERSIONS = ("v2.0", "v0.2")
SUPPORTED_VIRTUALIZATION = "container"
RR_IP_NETWORK = ipaddress.IPv4Network("10.30.0.0/16")
NAME_PATTERN = re.compile(r"[A-Za-z0-9]{1,30}")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Oakestra's schema says integer for all of them; fractional CPUs are worth allowing at the edge.
INTEGER_FIELDS = ("memory", "vgpus", "vtpus", "bandwidth_in", "bandwidth_out", "storage")
NUMBER_FIELDS = ("vcpus",)
STRING_LIST_FIELDS = ("cmd", "args", "environment", "added_files")
OPTIONAL_STRING_FIELDS = ("microserviceID", "state")
BOOL_FIELDS = ("one_shot", "privileged")
UNSUPPORTED_CONSTRAINTS = ("latency", "geo")


@dataclass(frozen=True)
class FieldError:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path or 'descriptor'}: {self.reason}"


class DescriptorError(ValueError):
    """Invalid descriptor; `errors` holds every problem found, not only the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True)
class Constraint:
    type: str
    cluster: str = ""
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        result: dict = {"type": self.type}
        if self.cluster:
            result["cluster"] = self.cluster
        if self.nodes:
            result["node"] = ";".join(self.nodes)
        return result


@dataclass
class Microservice:
    microservice_name: str
    microservice_namespace: str
    code: str
    virtualization: str = SUPPORTED_VIRTUALIZATION
    application_name: str = ""
    application_namespace: str = ""
    microserviceID: str = ""  # Oakestra's field name
    cmd: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    memory: int = 0
    vcpus: float = 0
    vgpus: int = 0
    vtpus: int = 0
    bandwidth_in: int = 0
    bandwidth_out: int = 0
    storage: int = 0
    port: str = ""
    ports: list[PortMapping] = field(default_factory=list)
    rr_ip: str = ""
    constraints: list[Constraint] = field(default_factory=list)
    added_files: list[str] = field(default_factory=list)
    state: str = ""
    one_shot: bool = False
    privileged: bool = False

    @property
    def fqn(self) -> str:
        return service_fqn(
            self.application_name,
            self.application_namespace,
            self.microservice_name,
            self.microservice_namespace,
        )

    def env_entries(self) -> list[str]:
        """`NAME=value` entries, one per name; a later entry wins, as with `docker run -e` repeated."""
        env: dict[str, str] = {}
        for entry in self.environment:
            name, _equals, value = entry.partition("=")
            env[name] = value
        return [f"{name}={value}" for name, value in env.items()]

    def requirements(self) -> dict:
        return {
            "vcpus": self.vcpus,
            "memory": self.memory,
            "vgpus": self.vgpus,
            "storage": self.storage,
            "virtualization": self.virtualization,
        }

    def to_schedule_request(self, instance_numbers: list[int]) -> dict:
        """The service request `_scheduler.schedule` takes for this microservice."""
        return {
            "service": self.fqn,
            "requirements": self.requirements(),
            "instance_numbers": list(instance_numbers),
            "constraints": [constraint.to_dict() for constraint in self.constraints],
            "host_ports": [mapping.host_key for mapping in self.ports],
        }

    def network(self) -> dict:
        """What grove.edge.service_table needs of the service: its round-robin address (fixed, or ""
        for one to be allocated) and the ports it exposes."""
        return {"service": self.fqn, "rr_ip": self.rr_ip, "port": self.port}

    def labels(self) -> dict[str, str]:
        return {
            "grove.service": self.fqn,
            "grove.application": f"{self.application_name}.{self.application_namespace}",
            "grove.microservice": f"{self.microservice_name}.{self.microservice_namespace}",
        }

    def instance_spec(self) -> dict:
        """The `spec` option of grove.edge.instance (module_utils/_instance.SPEC_OPTIONS), without
        the environment: that travels on its own, masked, in the module's `env` option."""
        return {
            "image": self.code,
            "cmd": list(self.cmd),
            "args": list(self.args),
            "memory": self.memory,
            "vcpus": self.vcpus,
            "vgpus": self.vgpus,
            "storage": self.storage,
            "ports": format_ports(self.ports),
            "bandwidth_in": self.bandwidth_in,
            "bandwidth_out": self.bandwidth_out,
            "privileged": self.privileged,
            "one_shot": self.one_shot,
            "labels": self.labels(),
        }


@dataclass
class Application:
    application_name: str
    application_namespace: str
    applicationID: str = ""  # Oakestra's field name
    application_desc: str = ""
    microservices: list[Microservice] = field(default_factory=list)


@dataclass
class Descriptor:
    sla_version: str
    customerID: str  # Oakestra's field name
    applications: list[Application] = field(default_factory=list)

    def microservices(self) -> list[Microservice]:
        return [service for app in self.applications for service in app.microservices]


def service_fqn(app: str, app_namespace: str, service: str, service_namespace: str) -> str:
    return f"{app}.{app_namespace}.{service}.{service_namespace}"


# containerd refuses longer container ids; names of 30 characters each can make ids of ~133.
MAX_ID_LENGTH = 76


def instance_id(fqn: str, instance_number: int) -> str:
    """`app.appns.svc.svcns.instance.N`, shortened with a hash when containerd would refuse it."""
    suffix = f".instance.{instance_number}"
    full = fqn + suffix
    if len(full) <= MAX_ID_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    prefix = fqn[: MAX_ID_LENGTH - len(suffix) - len(digest) - 1].rstrip(".")
    return f"{prefix}-{digest}{suffix}"


def _type_name(value: object) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


class _Collector:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: str, reason: str) -> None:
        self.errors.append(FieldError(path, reason))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_name(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, str):
        errors.add(path, f"must be a string, not {_type_name(value)}")
    elif not NAME_PATTERN.fullmatch(value):
        errors.add(path, f"{value!r} must be 1 to 30 letters or digits (no symbols)")


def _check_required_string(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, str):
        errors.add(path, f"must be a string, not {_type_name(value)}")
    elif not value.strip():
        errors.add(path, "must not be empty")


def _check_optional_string(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, str):
        errors.add(path, f"must be a string, not {_type_name(value)}")


def _check_integer(errors: _Collector, path: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(path, f"must be a non-negative integer, not {_type_name(value)}")
    elif value < 0:
        errors.add(path, f"must be a non-negative integer, not {value}")


def _check_number(errors: _Collector, path: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.add(path, f"must be a non-negative number, not {_type_name(value)}")
    elif not math.isfinite(value) or value < 0:
        errors.add(path, f"must be a non-negative number, not {value}")


def _check_bool(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, bool):
        errors.add(path, f"must be true or false, not {_type_name(value)}")


def _check_string_list(errors: _Collector, path: str, value: object) -> list[str] | None:
    """Return the list when every item is a usable string, else None."""
    if not isinstance(value, list):
        errors.add(path, f"must be a list of strings, not {_type_name(value)}")
        return None
    valid = True
    for index, item in enumerate(value):
        if not isinstance(item, str):
            errors.add(f"{path}[{index}]", f"must be a string, not {_type_name(item)}")
            valid = False
        elif "\x00" in item:
            # argv and environ entries are C strings: a NUL would silently truncate them.
            errors.add(f"{path}[{index}]", "must not contain a NUL character")
            valid = False
    return value if valid else None


def environment_problem(entry: str) -> str:
    """Why an environment entry cannot be used ("" if it can): the one rule for every caller."""
    name, has_equals, _value = entry.partition("=")
    if not has_equals or not ENV_NAME_PATTERN.fullmatch(name):
        return "must look like VAR=value (VAR: letters, digits, underscore; no leading digit)"
    if "\x00" in entry:
        return "must not contain a NUL character"
    if "\n" in entry or "\r" in entry:
        # containerd reads the environment from a file with one entry per line.
        return "must not contain a line break"
    return ""


def _check_environment(errors: _Collector, path: str, value: object) -> None:
    entries = _check_string_list(errors, path, value)
    for index, entry in enumerate(entries or []):
        problem = environment_problem(entry)
        if problem:
            # The entry holds a secret more often than not: name the variable, never the value.
            name = entry.partition("=")[0]
            errors.add(f"{path}[{index}]", f"entry for {name!r} {problem}" if "=" in entry else problem)


def _check_code(errors: _Collector, path: str, value: object) -> None:
    _check_required_string(errors, path, value)
    if not isinstance(value, str) or not value.strip():
        return
    if any(char.isspace() or not char.isprintable() for char in value):
        errors.add(path, f"{value!r} is not an image reference: it contains whitespace or control characters")
    elif value.startswith("-"):
        # The image reference ends up as an argv element of ctr: never let it read as an option.
        errors.add(path, f"{value!r} is not an image reference: it starts with '-'")


def _check_virtualization(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, str):
        errors.add(path, f"must be a string, not {_type_name(value)}")
    elif value == "unikernel":
        errors.add(path, "'unikernel' is not supported by Grove: use 'container'")
    elif value != SUPPORTED_VIRTUALIZATION:
        errors.add(path, f"{value!r} is not a known virtualization: use 'container'")


def _check_rr_ip(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, str):
        errors.add(path, f"must be a string, not {_type_name(value)}")
        return
    if value == "":
        return
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        errors.add(path, f"{value!r} is not an IPv4 address")
        return
    if address not in RR_IP_NETWORK:
        errors.add(path, f"{value} is outside {RR_IP_NETWORK}")
    elif address in (RR_IP_NETWORK.network_address, RR_IP_NETWORK.broadcast_address):
        errors.add(path, f"{value} is the network or broadcast address of {RR_IP_NETWORK}")


def _check_addresses(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, dict):
        errors.add(path, f"must be an object, not {_type_name(value)}")
        return
    if "rr_ip" in value:
        _check_rr_ip(errors, _join(path, "rr_ip"), value["rr_ip"])


def _check_node_list(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, str):
        errors.add(path, f"must be a string like 'node1;node2', not {_type_name(value)}")
        return
    if value == "":
        return
    for position, node in enumerate(value.split(";"), start=1):
        if not node.strip():
            errors.add(path, f"entry {position} of the node list is empty")


def _check_constraint(errors: _Collector, path: str, value: object) -> bool:
    """Return whether this is a well-formed direct constraint."""
    if not isinstance(value, dict):
        errors.add(path, f"must be an object, not {_type_name(value)}")
        return False
    if "type" not in value:
        errors.add(_join(path, "type"), "is required")
        return False
    kind = value["type"]
    type_path = _join(path, "type")
    if not isinstance(kind, str):
        errors.add(type_path, f"must be a string, not {_type_name(kind)}")
        return False
    if kind in UNSUPPORTED_CONSTRAINTS:
        errors.add(type_path, f"{kind!r} constraints are not supported by Grove: only 'direct' is")
        return False
    if kind != "direct":
        errors.add(type_path, f"{kind!r} is not a known constraint type: only 'direct' is supported")
        return False
    if "cluster" in value:
        _check_optional_string(errors, _join(path, "cluster"), value["cluster"])
    if "node" in value:
        _check_node_list(errors, _join(path, "node"), value["node"])
    return True


def _check_constraints(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, list):
        errors.add(path, f"must be a list, not {_type_name(value)}")
        return
    direct_seen = False
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if _check_constraint(errors, item_path, item):
            if direct_seen:
                errors.add(item_path, "only one 'direct' constraint is allowed per microservice")
            direct_seen = True


def _check_port(errors: _Collector, path: str, value: object) -> None:
    if not isinstance(value, str):
        errors.add(path, f"must be a string like '8080:80/tcp;53/udp', not {_type_name(value)}")
        return
    for problem in port_problems(value)[1]:
        errors.add(path, problem)


def _require(errors: _Collector, path: str, data: dict, key: str) -> bool:
    if key not in data:
        errors.add(_join(path, key), "is required")
        return False
    return True


def _check_microservice(errors: _Collector, path: str, data: object) -> None:
    if not isinstance(data, dict):
        errors.add(path, f"must be an object, not {_type_name(data)}")
        return
    for key in ("microservice_name", "microservice_namespace"):
        if _require(errors, path, data, key):
            _check_name(errors, _join(path, key), data[key])
    if _require(errors, path, data, "virtualization"):
        _check_virtualization(errors, _join(path, "virtualization"), data["virtualization"])
    if _require(errors, path, data, "code"):
        _check_code(errors, _join(path, "code"), data["code"])
    checks = [(key, _check_integer) for key in INTEGER_FIELDS]
    checks += [(key, _check_number) for key in NUMBER_FIELDS]
    checks += [(key, _check_string_list) for key in ("cmd", "args", "added_files")]
    checks += [(key, _check_optional_string) for key in OPTIONAL_STRING_FIELDS]
    checks += [(key, _check_bool) for key in BOOL_FIELDS]
    checks += [
        ("environment", _check_environment),
        ("port", _check_port),
        ("addresses", _check_addresses),
        ("constraints", _check_constraints),
    ]
    for key, check in checks:
        if key in data:
            check(errors, _join(path, key), data[key])


def _name_key(data: dict, keys: tuple[str, str]) -> tuple[str, str] | None:
    a, b = data.get(keys[0]), data.get(keys[1])
    if isinstance(a, str) and isinstance(b, str) and NAME_PATTERN.fullmatch(a) and NAME_PATTERN.fullmatch(b):
        return a, b
    return None


def _check_duplicates(errors: _Collector, path: str, items: list, keys: tuple[str, str], what: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        key = _name_key(item, keys) if isinstance(item, dict) else None
        if key is None:
            continue
        if key in seen:
            errors.add(
                f"{path}[{index}]",
                f"duplicate {what} {key[0]}.{key[1]} (first defined at {path}[{seen[key]}])",
            )
        else:
            seen[key] = index


def _check_application(errors: _Collector, path: str, data: object) -> None:
    if not isinstance(data, dict):
        errors.add(path, f"must be an object, not {_type_name(data)}")
        return
    for key in ("application_name", "application_namespace"):
        if _require(errors, path, data, key):
            _check_name(errors, _join(path, key), data[key])
    for key in ("applicationID", "application_desc"):
        if key in data:
            _check_optional_string(errors, _join(path, key), data[key])
    if not _require(errors, path, data, "microservices"):
        return
    services = data["microservices"]
    services_path = _join(path, "microservices")
    if not isinstance(services, list):
        errors.add(services_path, f"must be a list, not {_type_name(services)}")
        return
    for index, service in enumerate(services):
        _check_microservice(errors, f"{services_path}[{index}]", service)
    _check_duplicates(
        errors, services_path, services, ("microservice_name", "microservice_namespace"), "microservice"
    )


def _check_unique_rr_ips(errors: _Collector, applications: list) -> None:
    owners: dict[str, str] = {}
    for app_index, app in enumerate(applications):
        services = app.get("microservices") if isinstance(app, dict) else None
        if not isinstance(services, list):
            continue
        for index, service in enumerate(services):
            addresses = service.get("addresses") if isinstance(service, dict) else None
            rr_ip = addresses.get("rr_ip") if isinstance(addresses, dict) else None
            if not isinstance(rr_ip, str) or not rr_ip:
                continue
            path = f"applications[{app_index}].microservices[{index}].addresses.rr_ip"
            if rr_ip in owners:
                errors.add(path, f"{rr_ip} is already the address of {owners[rr_ip]}")
            else:
                owners[rr_ip] = path.rsplit(".addresses", 1)[0]


def validate_descriptor(data: object) -> list[FieldError]:
    """Every problem of an SLA v2 descriptor, each with the path of the offending field."""
    errors = _Collector()
    if not isinstance(data, dict):
        errors.add("", f"must be an object, not {_type_name(data)}")
        return errors.errors
    if _require(errors, "", data, "sla_version"):
        version = data["sla_version"]
        if not isinstance(version, str):
            errors.add("sla_version", f"must be a string, not {_type_name(version)}")
        elif version not in SLA_VERSIONS:
            errors.add("sla_version", f"{version!r} is not supported: use one of {', '.join(SLA_VERSIONS)}")
    if _require(errors, "", data, "customerID"):
        _check_required_string(errors, "customerID", data["customerID"])
    if "args" in data:
        _check_string_list(errors, "args", data["args"])
    if not _require(errors, "", data, "applications"):
        return errors.errors
    applications = data["applications"]
    if not isinstance(applications, list):
        errors.add("applications", f"must be a list, not {_type_name(applications)}")
        return errors.errors
    if not applications:
        errors.add("applications", "must contain at least one application")
    for index, application in enumerate(applications):
        _check_application(errors, f"applications[{index}]", application)
    _check_duplicates(
        errors, "applications", applications, ("application_name", "application_namespace"), "application"
    )
    _check_unique_rr_ips(errors, applications)
    return errors.errors


def _build_constraints(raw: list) -> list[Constraint]:
    constraints = []
    for item in raw:
        nodes = tuple(node.strip() for node in item.get("node", "").split(";") if node.strip())
        constraints.append(Constraint(type=item["type"], cluster=item.get("cluster", ""), nodes=nodes))
    return constraints


def _build_microservice(data: dict, app_name: str, app_namespace: str) -> Microservice:
    optional = {
        key: data[key]
        for key in (
            *INTEGER_FIELDS,
            *NUMBER_FIELDS,
            *OPTIONAL_STRING_FIELDS,
            *BOOL_FIELDS,
        )
        if key in data
    }
    lists = {key: list(data[key]) for key in STRING_LIST_FIELDS if key in data}
    port = data.get("port", "")
    return Microservice(
        microservice_name=data["microservice_name"],
        microservice_namespace=data["microservice_namespace"],
        code=data["code"],
        virtualization=data["virtualization"],
        application_name=app_name,
        application_namespace=app_namespace,
        port=port,
        ports=parse_ports(port),
        rr_ip=data.get("addresses", {}).get("rr_ip", ""),
        constraints=_build_constraints(data.get("constraints", [])),
        **optional,
        **lists,
    )


def _build_application(data: dict) -> Application:
    name, namespace = data["application_name"], data["application_namespace"]
    return Application(
        application_name=name,
        application_namespace=namespace,
        applicationID=data.get("applicationID", ""),
        application_desc=data.get("application_desc", ""),
        microservices=[_build_microservice(item, name, namespace) for item in data["microservices"]],
    )


def parse_descriptor(data: object) -> Descriptor:
    """Validated, typed descriptor; raises DescriptorError listing every problem."""
    errors = validate_descriptor(data)
    if errors or not isinstance(data, dict):
        raise DescriptorError(errors)
    return Descriptor(
        sla_version=data["sla_version"],
        customerID=data["customerID"],
        applications=[_build_application(item) for item in data["applications"]],
    )


def _service_paths(descriptor: Descriptor):
    for app_index, application in enumerate(descriptor.applications):
        for index, service in enumerate(application.microservices):
            yield f"applications[{app_index}].microservices[{index}]", service


def privileged_errors(descriptor: Descriptor) -> list[FieldError]:
    """`privileged: true` gives root on the worker to whoever wrote the descriptor: callers refuse
    it unless the operator (a play variable) or an Admin (the API) allows it."""
    return [
        FieldError(f"{path}.privileged", "privileged instances are not allowed here (root on the worker)")
        for path, service in _service_paths(descriptor)
        if service.privileged
    ]


def unhonoured_fields(descriptor: Descriptor, *, networking: bool = False) -> list[FieldError]:
    """Fields that pass validation but that Grove does not act on (here): say so, never silently.

    `networking`: whether the workers run the grove_network role, which routes service addresses.
    """
    notes = []
    for path, service in _service_paths(descriptor):
        if service.rr_ip and not networking:
            notes.append(
                FieldError(
                    f"{path}.addresses.rr_ip",
                    f"{service.rr_ip} is not routed: no worker runs the grove_network role",
                )
            )
        if service.added_files:
            notes.append(FieldError(f"{path}.added_files", "is not honoured yet: no files are added"))
        if service.vtpus:
            notes.append(FieldError(f"{path}.vtpus", "is not honoured: Grove schedules no TPUs"))
        if service.vgpus:
            notes.append(
                FieldError(
                    f"{path}.vgpus",
                    "only steers scheduling to workers with enough GPUs: "
                    "no GPU is passed into the container yet",
                )
            )
    return notes
