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
  service:
    description: Only this fully qualified service name.
    type: str
  instance:
    description: Only this instance number.
    type: int
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
service_names:
  description: Fully qualified names of the selected services.
  returned: success
  type: list
  elements: str
  sample: [clientsrvr.test.curl.test, clientsrvr.test.nginx.test]
instances:
  description: Options of M(grove.edge.instance) per container id C(app.appns.svc.svcns.instance.N).
  returned: success
  type: dict
  sample:
    clientsrvr.test.nginx.test.instance.0:
      service: clientsrvr.test.nginx.test
      instance_number: 0
      image: docker.io/library/nginx:latest
      ports: "6080:80/tcp"
errors:
  description: "Every validation problem, as C(path: reason)."
  returned: failure
  type: list
  elements: str
  sample: ["applications[0].microservices[1].port: '70000' is not a port (1-65535)"]
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils._descriptor import (
    instance_id,
    parse_descriptor,
    validate_descriptor,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:
    HAS_YAML = False


def _load(module, path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        module.fail_json(msg="descriptor %s: cannot read it: %s" % (path, exc))
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


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path"},
            "content": {"type": "dict"},
            "instances": {"type": "int", "default": 1},
            "instance_counts": {"type": "dict", "default": {}},
            "service": {"type": "str"},
            "instance": {"type": "int"},
        },
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

    counts = params["instance_counts"]
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            module.fail_json(msg="instance_counts.%s: must be a non-negative integer, not %r" % (name, count))
    if params["instances"] < 0:
        module.fail_json(msg="instances: must be a non-negative integer, not %d" % params["instances"])
    microservices = descriptor.microservices()
    known = {ms.fqn for ms in microservices}
    unknown = sorted(set(counts) - known)
    if params["service"] and params["service"] not in known:
        unknown.append(params["service"])
    if unknown:
        module.fail_json(msg="descriptor %s has no service named %s; it has %s" % (
            source, ", ".join(unknown), ", ".join(sorted(known))))

    services, instances = [], {}
    for ms in microservices:
        if params["service"] and ms.fqn != params["service"]:
            continue
        numbers = list(range(counts.get(ms.fqn, params["instances"])))
        if params["instance"] is not None:
            numbers = [n for n in numbers if n == params["instance"]] or [params["instance"]]
        services.append(ms.to_schedule_request(numbers))
        for number in numbers:
            instances[instance_id(ms.fqn, number)] = ms.to_instance_args(number)
    module.exit_json(changed=False, services=services, instances=instances,
                     service_names=sorted(s["service"] for s in services))


if __name__ == "__main__":
    main()
