#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_names
short_description: Write the hosts files that name services inside instances
version_added: 0.1.0
description:
  - Gives every listed instance on the worker a hosts file, C(<hosts_dir>/<instance id>), meant to
    be bind-mounted read-only at C(/etc/hosts) in the instance's container. It holds the localhost
    lines and, for every service of the instance's own application that has a round-robin
    address, a line C(<rr_ip> <service>.<servicens>.<app>.<appns> <service>), for example
    C(10.30.1.2 nginx.test.clientsrvr.test nginx). The bare name is left out when two services of
    the application share it.
  - Files are rewritten in place (same inode), because a bind mount pins the inode; the new text
    is written over the old before the file is cut to length, so a reader never sees it empty.
  - No daemon is involved; run the module again whenever services come or go.
author:
  - Grove developers (@grove)
options:
  services:
    description:
      - Every service with a round-robin address; items need C(service) (fully qualified
        C(app.appns.service.servicens)) and C(rr_ip). Other keys (C(ports), C(backends)) are
        ignored, so the list given to M(grove.edge.service_address) serves here too.
    type: list
    elements: dict
    default: []
  instances:
    description:
      - The instances on this worker whose hosts files to write (or remove); items need C(id) (the
        containerd id) and C(service). Other keys are ignored, so the instance list of
        M(grove.edge.node_info) can be given as it is.
    type: list
    elements: dict
    default: []
  state:
    description: C(absent) removes the hosts files of the listed instances.
    type: str
    choices: [present, absent]
    default: present
  hosts_dir:
    description: Directory of the hosts files.
    type: path
    default: /run/grove/hosts
attributes:
  check_mode:
    description: Reports which files would change and writes nothing.
    support: full
  diff_mode:
    description: Shows the files' contents before and after.
    support: full
"""

EXAMPLES = r"""
- name: Name the services inside every instance on this worker
  grove.edge.service_names:
    services:
      - {service: clientsrvr.test.nginx.test, rr_ip: 10.30.1.2}
      - {service: clientsrvr.test.curl.test, rr_ip: 10.30.1.3}
    instances: "{{ grove_node_info.node.instances }}"
"""

RETURN = r"""
files:
  description: The hosts files written or removed (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [/run/grove/hosts/clientsrvr.test.curl.test.instance.0]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils import _service_names as names
from ansible_collections.grove.edge.plugins.module_utils._service_address import (
    ServiceAddressError,
    check_fqn,
)

ARGUMENT_SPEC = dict(
    services=dict(type="list", elements="dict", default=[]),
    instances=dict(type="list", elements="dict", default=[]),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    hosts_dir=dict(type="path", default=names.DEFAULT_HOSTS_DIR),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    present = params["state"] == "present"
    wanted = {}
    try:
        entries = names.application_entries(params["services"]) if present else {}
        for index, instance in enumerate(params["instances"]):
            where = "instances[%d]" % index
            path = names.hosts_path(
                params["hosts_dir"], names.check_instance_id(instance.get("id"), where + ".id")
            )
            if not present:
                wanted[path] = None
                continue
            app = names.application_of(check_fqn(instance.get("service"), where + ".service"))
            wanted[path] = names.render_hosts(app, entries.get(app, []))
    except (names.ServiceNamesError, ServiceAddressError) as exc:
        module.fail_json(msg="service names: invalid options: %s" % exc)
    files, before, after = [], {}, {}
    for path, content in sorted(wanted.items()):
        current = names.read(path)
        if current == content:
            continue
        files.append(path)
        before[path] = current
        after[path] = content
        if module.check_mode:
            continue
        try:
            if content is None:
                os.unlink(path)
            else:
                names.write_in_place(path, content)
        except OSError as exc:
            module.fail_json(msg="service names: %s: %s" % (path, exc), files=files)
    module.exit_json(changed=bool(files), files=files, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
