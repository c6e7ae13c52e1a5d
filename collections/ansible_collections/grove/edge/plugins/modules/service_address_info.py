#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_address_info
short_description: Read the service addresses a worker's nftables table holds
version_added: 0.1.0
description:
  - Reads the table that M(grove.edge.service_address) owns and returns its services with their
    round-robin addresses, ports and backends. Every service's rule names the service, so the
    live table is the record of which service has which address, also for services without
    running instances.
  - Playbooks without a store use it to keep existing addresses stable and to detect a fixed
    C(rr_ip) that another service already has (see the P(grove.edge.service_table#filter) filter).
author:
  - Grove developers (@grove)
options:
  table:
    description: Name of the table (family C(ip)).
    type: str
    default: grove_services
attributes:
  check_mode:
    description: Reads only; the same in check mode.
    support: full
"""

EXAMPLES = r"""
- name: Read the service addresses in use on every worker
  grove.edge.service_address_info:
  register: grove_service_address_info
"""

RETURN = r"""
exists:
  description: Whether the table exists.
  returned: always
  type: bool
services:
  description: The services in the table, by name.
  returned: always
  type: list
  elements: dict
  sample:
    - service: clientsrvr.test.nginx.test
      rr_ip: 10.30.1.2
      ports: [80/tcp]
      backends: [10.18.1.2, 10.18.2.2]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils._nft import Nft, NftError, check_table
from ansible_collections.grove.edge.plugins.module_utils._service_address import (
    DEFAULT_TABLE,
    services_in_table,
)

ARGUMENT_SPEC = dict(table=dict(type="str", default=DEFAULT_TABLE))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        check_table("ip", module.params["table"])
    except ValueError as exc:
        module.fail_json(msg="service addresses: invalid options: %s" % exc)
    nft = Nft(
        lambda argv, data=None: module.run_command(argv, data=data, expand_user_and_vars=False),
        module.get_bin_path("nft", required=True, opt_dirs=["/usr/sbin", "/sbin"]),
    )
    try:
        live = nft.list_table("ip", module.params["table"])
    except NftError as exc:
        module.fail_json(msg="service addresses: %s" % exc, stdout=exc.stdout, stderr=exc.stderr)
    module.exit_json(changed=False, exists=live is not None, services=services_in_table(live))


if __name__ == "__main__":
    main()
