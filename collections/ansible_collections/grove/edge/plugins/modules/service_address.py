#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_address
short_description: Balance connections to service addresses over the services' running instances
version_added: 0.1.0
description:
  - Owns one nftables table (family C(ip), default C(grove_services)) on a worker that makes every
    service's round-robin address (RR_ip, in C(10.30.0.0/16)) reach the service's running
    instances on all workers.
  - A connection from an instance (through O(bridge)) or from a process on the worker to
    C(RR_ip:port) is DNATed to one of the service's backends, chosen round-robin per connection;
    conntrack keeps the connection on that backend. Only the service's ports answer; a service
    without ports in O(services) answers on every port and protocol.
  - DNATed connections to a backend on the worker's own bridge are masqueraded, so replies work
    when client and server share a bridge (hairpin); so are those of processes on the worker.
  - Anything still addressed to O(service_network) after that (an unknown address, a closed
    port, a service without running instances) is rejected at once, TCP with a reset. Nothing
    routes service addresses anywhere, and DNAT targets must lie inside O(instance_network).
  - The table is always replaced whole, in one C(nft -f) transaction, so packets never see half
    the rules. The module renders the table, compares it with the live one, and changes nothing
    when they match.
  - Give the complete list of services on every call; services missing from it lose their
    rules. M(grove.edge.service_address_info) reads the live table back, and the
    P(grove.edge.service_table#filter) filter builds the complete list for playbooks.
author:
  - Grove developers (@grove)
options:
  services:
    description:
      - Every service with a round-robin address. Each item has C(service) (fully qualified
        C(app.appns.service.servicens)), C(rr_ip), C(ports) (list of C(port/protocol), the
        service's container ports; empty for every port) and C(backends) (addresses of the
        service's RUNNING instances on all workers). Other keys are ignored, so the same list
        serves M(grove.edge.service_names).
    type: list
    elements: dict
    default: []
  state:
    description: C(absent) removes the table.
    type: str
    choices: [present, absent]
    default: present
  table:
    description: Name of the table.
    type: str
    default: grove_services
  bridge:
    description: The bridge the worker's instances are attached to.
    type: str
    default: grove0
  service_network:
    description: Network of the service addresses.
    type: str
    default: 10.30.0.0/16
  instance_network:
    description: Network of the instance addresses; every backend must be inside it.
    type: str
    default: 10.18.0.0/16
attributes:
  check_mode:
    description: Reports whether the table would change and changes nothing.
    support: full
  diff_mode:
    description: Shows the live table and the rendered one.
    support: full
notes:
  - Needs root and C(nft) on the worker. M(grove.edge.overlay) routes the service network so that
    processes on the worker can reach service addresses too.
"""

EXAMPLES = r"""
- name: Balance the nginx service over its three instances
  grove.edge.service_address:
    services:
      - service: clientsrvr.test.nginx.test
        rr_ip: 10.30.1.2
        ports: [80/tcp]
        backends: [10.18.1.2, 10.18.1.3, 10.18.2.2]

- name: Remove every service address from the worker
  grove.edge.service_address:
    state: absent
"""

RETURN = r"""
services:
  description: The services as applied, normalised (sorted by address; backends sorted).
  returned: always
  type: list
  elements: dict
  sample:
    - service: clientsrvr.test.nginx.test
      rr_ip: 10.30.1.2
      ports: [80/tcp]
      backends: [10.18.1.2, 10.18.1.3, 10.18.2.2]
table:
  description: The rendered table (empty with O(state=absent)).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils import _service_address as addresses
from ansible_collections.grove.edge.plugins.module_utils._nft import Nft, NftError, check_table, same_table

ARGUMENT_SPEC = dict(
    services=dict(type="list", elements="dict", default=[]),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    table=dict(type="str", default=addresses.DEFAULT_TABLE),
    bridge=dict(type="str", default=addresses.DEFAULT_BRIDGE),
    service_network=dict(type="str", default=addresses.SERVICE_NETWORK),
    instance_network=dict(type="str", default=addresses.INSTANCE_NETWORK),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    table_name = params["table"]
    present = params["state"] == "present"
    services, rendered = [], ""
    try:
        check_table("ip", table_name)
        if present:
            services = addresses.parse_services(
                params["services"], params["service_network"], params["instance_network"]
            )
            rendered = addresses.render_table(
                services, table_name, params["bridge"], params["service_network"], params["instance_network"]
            )
    except ValueError as exc:
        module.fail_json(msg="service addresses: invalid options: %s" % exc)
    nft = Nft(
        lambda argv, data=None: module.run_command(argv, data=data, expand_user_and_vars=False),
        module.get_bin_path("nft", required=True, opt_dirs=["/usr/sbin", "/sbin"]),
    )
    try:
        live = nft.list_table("ip", table_name)
        changed = not same_table(live, rendered) if present else live is not None
        if changed and not module.check_mode:
            if present:
                nft.replace_table("ip", table_name, rendered)
            else:
                nft.delete_table("ip", table_name)
    except NftError as exc:
        module.fail_json(msg="service addresses: %s" % exc, stdout=exc.stdout, stderr=exc.stderr)
    module.exit_json(
        changed=changed,
        services=[service.to_dict() for service in services],
        table=rendered,
        diff={
            "before": live or "",
            "after": rendered,
            "before_header": "live table",
            "after_header": "rendered",
        },
    )


if __name__ == "__main__":
    main()
