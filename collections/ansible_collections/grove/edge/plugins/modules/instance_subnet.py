#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: instance_subnet
short_description: Read or record a worker's instance subnet
version_added: 0.1.0
description:
  - Every worker keeps its instance subnet (the range its instances get their addresses from) in a
    small JSON file, together with the subnets of all workers it knew at the last run. The hosts
    are the record, so a subnet stays with its worker for the worker's life, whatever happens to the
    inventory.
  - Without O(subnet) the module only reads the record and never changes anything; the
    P(grove.edge.network_plan#filter) filter then plans the subnets of all workers from the
    records and the inventory, and a second call with O(subnet) writes each worker's share.
  - The file is replaced atomically (written aside, then renamed).
author:
  - Grove developers (@grove)
options:
  path:
    description: The record file.
    type: path
    default: /etc/grove/network.json
  subnet:
    description:
      - The worker's instance subnet to record, for example C(10.18.3.0/24).
      - Omit it to only read the record.
    type: str
  pool:
    description: The pool the subnets come from; recorded alongside.
    type: str
    default: 10.18.0.0/16
  allocations:
    description:
      - Host name to instance subnet of every worker, recorded so that a worker that cannot be
        read later gets its subnet back from the others.
    type: dict
    default: {}
  force:
    description:
      - Replace a recorded subnet with a different one.
      - Instances keep their addresses for their life, so without this the module refuses to
        change a worker's subnet under them.
    type: bool
    default: false
attributes:
  check_mode:
    description: Reports whether the record would change, and writes nothing.
    support: full
  diff_mode:
    description: Shows the record before and after.
    support: full
"""

EXAMPLES = r"""
- name: Read this worker's record
  grove.edge.instance_subnet:
  register: grove_network_record

- name: Record the planned subnet
  grove.edge.instance_subnet:
    subnet: 10.18.3.0/24
    allocations:
      c1w1: 10.18.1.0/24
      c1w2: 10.18.3.0/24
"""

RETURN = r"""
subnet:
  description: The recorded instance subnet (after the change), or an empty string without a record.
  returned: always
  type: str
  sample: 10.18.3.0/24
record:
  description: The whole record as it is after the module ran (in check mode, as it would be).
  returned: always
  type: dict
  sample:
    version: 1
    instance_subnet: 10.18.3.0/24
    pool: 10.18.0.0/16
    allocations: {c1w1: 10.18.1.0/24, c1w2: 10.18.3.0/24}
path:
  description: The record file.
  returned: always
  type: str
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils._subnet_pool import (
    SubnetError,
    parse_network,
    parse_record,
    render_record,
)

ARGUMENT_SPEC = dict(
    path=dict(type="path", default="/etc/grove/network.json"),
    subnet=dict(type="str"),
    pool=dict(type="str", default="10.18.0.0/16"),
    allocations=dict(type="dict", default={}),
    force=dict(type="bool", default=False),
)


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def write_atomically(path, content):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".network.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    path = module.params["path"]
    try:
        text = read_text(path)
        record = parse_record(text, path)
    except (OSError, SubnetError) as exc:
        module.fail_json(msg="instance subnet record %s: %s" % (path, exc))
    subnet = module.params["subnet"]
    if not subnet:
        module.exit_json(changed=False, subnet=record.get("instance_subnet", ""), record=record, path=path)
    try:
        wanted = str(parse_network(subnet, "subnet"))
        pool = str(parse_network(module.params["pool"], "pool"))
        allocations = {}
        for host, value in module.params["allocations"].items():
            allocations[str(host)] = str(parse_network(value, "allocations.%s" % host))
        content = render_record(wanted, pool, allocations)
    except SubnetError as exc:
        module.fail_json(msg="instance subnet record %s: %s" % (path, exc))
    recorded = record.get("instance_subnet", "")
    if recorded and recorded != wanted and not module.params["force"]:
        module.fail_json(
            msg="instance subnet record %s: the worker's subnet is %s, not %s; instances keep their "
            "addresses for their life, so it is not changed without force=true" % (path, recorded, wanted),
            subnet=recorded,
            record=record,
            path=path,
        )
    changed = content != text
    if changed and not module.check_mode:
        try:
            write_atomically(path, content)
        except OSError as exc:
            module.fail_json(msg="instance subnet record %s: cannot write it: %s" % (path, exc))
    module.exit_json(
        changed=changed,
        subnet=wanted,
        record=json.loads(content),
        path=path,
        diff={"before": text, "after": content, "before_header": path, "after_header": path},
    )


if __name__ == "__main__":
    main()
