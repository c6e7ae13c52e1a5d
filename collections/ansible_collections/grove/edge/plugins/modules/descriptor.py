#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: descriptor
short_description: Validate an Oakestra deployment descriptor and list the instances it asks for
version_added: "0.1.0"
description:
  - Reads an SLA v2 deployment descriptor (Oakestra's format), validates every field and reports
    all problems at once, each with the path of the offending field.
  - Returns the scheduling requests for M(grove.edge.schedule) and, per instance, the options of
    M(grove.edge.instance). Descriptor values are returned as data and are never templated.
  - Runs on the controller and changes nothing.
options:
  path:
    description: Path of the descriptor file (JSON or YAML) on the host that runs the module.
    type: path
  content:
    description: The descriptor itself. Mutually exclusive with O(path).
    type: dict
  instances:
    description: Number of instances of every microservice, numbered from 0.
    type: int
    default: 1
  instance_counts:
    description:
      Instance count per fully qualified service name (C(app.appns.svc.svcns)); overrides O(instances).
    type: dict
    default: {}
  instances_path:
    description:
      - "A JSON file C({\"app.appns.svc.svcns\": [0, 2, 5]}) naming exactly the instance numbers that
        must run for each listed service (C([]) removes them all). It overrides O(instances) and
        O(instance_counts) for the services it lists. The Grove API hands its jobs over this way."
      - C(null) instead of a list removes the service altogether, its service address included
        (RV(removed_services)).
    type: path
  service:
    description: Only this fully qualified service name.
    type: str
  instance:
    description: Only this instance number.
    type: int
  environment:
    description:
      - Return only RV(environment), the environment entries of each service, and nothing else.
      - They often carry secrets, so run the task with C(no_log=true) (the playbooks do), after a task
        without this option has validated the descriptor with its errors in plain sight.
    type: bool
    default: false
  networking:
    description:
      - Whether the workers run the C(grove_network) role, which routes service addresses; without
        it a fixed C(addresses.rr_ip) is warned about as not routed.
    type: bool
    default: false
  allow_privileged:
    description:
      - Accept microservices with C(privileged=true). A privileged container is root on its worker,
        so this is for the operator to allow, never for whoever writes the descriptor.
    type: bool
    default: false
author:
  - Grove developers (@grove)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Validate a descriptor and plan two instances of each service
  grove.edge.descriptor:
    path: examples/clientsrvr.json
    instances: 2
  delegate_to: localhost
  run_once: true
  register: plan
"""

RETURN = r"""
services:
  description: Scheduling requests, the O(grove.edge.schedule#module:services) option.
  returned: success
  type: list
  elements: dict
  sample:
    - service: clientsrvr.test.nginx.test
      instance_numbers: [0]
      requirements: {vcpus: 1, memory: 100, vgpus: 0, storage: 0, virtualization: container}
      constraints: []
      host_ports: [6080/tcp]
service_names:
  description: Fully qualified names of the selected services.
  returned: success
  type: list
  elements: str
  sample: [clientsrvr.test.curl.test, clientsrvr.test.nginx.test]
specs:
  description:
    - The O(grove.edge.instance#module:spec) option per fully qualified service name, without the
      environment (see O(environment)).
  returned: success
  type: dict
  sample:
    clientsrvr.test.nginx.test:
      image: docker.io/library/nginx:latest
      cmd: []
      args: []
      memory: 100
      vcpus: 1
      vgpus: 0
      storage: 0
      ports: "6080:80/tcp"
      bandwidth_in: 0
      bandwidth_out: 0
      privileged: false
      one_shot: false
      labels: {grove.service: clientsrvr.test.nginx.test}
network:
  description:
    - Per selected service, what M(grove.edge.service_address) needs through the
      C(grove.edge.service_table) filter; C(rr_ip) is the descriptor's fixed address or empty.
  returned: success
  type: list
  elements: dict
  sample: [{service: clientsrvr.test.nginx.test, rr_ip: 10.30.1.1, port: "6080:80/tcp"}]
removed_services:
  description: Services the instances file maps to C(null), to remove with their service address.
  returned: success
  type: list
  elements: str
  sample: [clientsrvr.test.curl.test]
environment:
  description: Environment entries C(NAME=value) per fully qualified service name.
  returned: when O(environment=true)
  type: dict
  sample: {clientsrvr.test.curl.test: ["GREETING=hello"]}
errors:
  description: "Every validation problem, as C(path: reason)."
  returned: failure
  type: list
  elements: str
  sample:
    - "applications[0].microservices[1].port: entry 1 ('0:80'): ports must be whole numbers from 1 to 65535"
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils._descriptor import (
    parse_descriptor,
    privileged_errors,
    unhonoured_fields,
    validate_descriptor,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:
    HAS_YAML = False


def _read(module, path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        module.fail_json(msg="%s %s: cannot read it: %s" % (what, path, exc))
    return None


def _load(module, path):
    text = _read(module, path, "descriptor")
    try:
        return json.loads(text)
    except ValueError as json_error:
        if not HAS_YAML:
            module.fail_json(msg="descriptor %s: not valid JSON: %s" % (path, json_error))
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            module.fail_json(msg="descriptor %s: neither JSON nor YAML: %s" % (path, exc))
    return None


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _instance_numbers(module, params, known):
    """Instance numbers per service: the instances file, else the counts, else `instances`."""
    counts = params["instance_counts"]
    for name, count in counts.items():
        if not _is_count(count):
            module.fail_json(msg="instance_counts.%s: must be a non-negative integer, not %r" % (name, count))
    if params["instances"] < 0:
        module.fail_json(msg="instances: must be a non-negative integer, not %d" % params["instances"])
    exact = {}
    if params["instances_path"]:
        path = params["instances_path"]
        try:
            exact = json.loads(_read(module, path, "instances file"))
        except ValueError as exc:
            module.fail_json(msg="instances file %s: not valid JSON: %s" % (path, exc))
        if not isinstance(exact, dict):
            module.fail_json(msg="instances file %s: must be an object of service name to numbers" % path)
        for name, numbers in exact.items():
            if numbers is not None and (
                not isinstance(numbers, list) or not all(_is_count(number) for number in numbers)
            ):
                module.fail_json(
                    msg="instances file %s: %s must be a list of non-negative integers (or null)"
                    % (path, name)
                )
    unknown = sorted((set(counts) | set(exact)) - known)
    if params["service"] and params["service"] not in known:
        unknown.append(params["service"])
    if unknown:
        module.fail_json(
            msg="the descriptor has no service named %s; it has %s"
            % (", ".join(unknown), ", ".join(sorted(known)))
        )
    numbers = {}
    for name in known:
        numbers[name] = (
            sorted(set(exact[name] or []))
            if name in exact
            else list(range(counts.get(name, params["instances"])))
        )
        if params["instance"] is not None:
            numbers[name] = [params["instance"]]
    return numbers, sorted(name for name, value in exact.items() if value is None)


ARGUMENT_SPEC = {
    "path": {"type": "path"},
    "content": {"type": "dict"},
    "instances": {"type": "int", "default": 1},
    "instance_counts": {"type": "dict", "default": {}},
    "instances_path": {"type": "path"},
    "service": {"type": "str"},
    "instance": {"type": "int"},
    "environment": {"type": "bool", "default": False},
    "networking": {"type": "bool", "default": False},
    "allow_privileged": {"type": "bool", "default": False},
}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("path", "content")],
        required_one_of=[("path", "content")],
        supports_check_mode=True,
    )
    params = module.params
    source = params["path"] or "content"
    data = _load(module, params["path"]) if params["path"] else params["content"]
    errors = validate_descriptor(data)
    if errors:
        lines = ["%s: %s" % (e.path or "(descriptor)", e.reason) for e in errors]
        module.fail_json(msg="descriptor %s is invalid:\n%s" % (source, "\n".join(lines)), errors=lines)
    descriptor = parse_descriptor(data)
    if params["content"] and not params["environment"]:
        # The descriptor came in as an option, which Ansible echoes back in the result: keep the
        # environment (secrets, often) out of that echo.
        module.no_log_values.update(entry for ms in descriptor.microservices() for entry in ms.environment)
    refused = [] if params["allow_privileged"] else privileged_errors(descriptor)
    if refused:
        lines = ["%s: %s" % (e.path, e.reason) for e in refused]
        module.fail_json(
            msg="descriptor %s asks for privileged instances; an operator may allow them with "
            "grove_allow_privileged=true:\n%s" % (source, "\n".join(lines)),
            errors=lines,
        )
    microservices = [ms for ms in descriptor.microservices() if params["service"] in (None, ms.fqn)]
    if params["environment"]:
        module.exit_json(changed=False, environment={ms.fqn: ms.env_entries() for ms in microservices})
    for note in unhonoured_fields(descriptor, networking=params["networking"]):
        module.warn("descriptor %s: %s: %s" % (source, note.path, note.reason))
    numbers, removed = _instance_numbers(module, params, {ms.fqn for ms in descriptor.microservices()})
    module.exit_json(
        changed=False,
        services=[ms.to_schedule_request(numbers[ms.fqn]) for ms in microservices],
        specs={ms.fqn: ms.instance_spec() for ms in microservices},
        service_names=sorted(ms.fqn for ms in microservices),
        network=[ms.network() for ms in microservices if ms.fqn not in removed],
        removed_services=removed,
    )


if __name__ == "__main__":
    main()
