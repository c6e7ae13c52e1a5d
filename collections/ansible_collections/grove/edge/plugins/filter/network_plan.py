# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: network_plan
short_description: Plan every worker's instance subnet and underlay address
version_added: "0.1.0"
description:
  - Takes the host variables of the workers of one network and returns, per worker, its instance
    subnet and underlay address, the input of M(grove.edge.instance_subnet) and M(grove.edge.overlay).
  - "A worker's subnet is, in this order: its C(grove_instance_subnet) variable; the subnet in its
    own record (read with M(grove.edge.instance_subnet) and registered); what the other workers'
    records remember for it (a worker that did not answer keeps its subnet); else the lowest free
    subnet of the pool, workers taken in name order."
  - Every worker evaluates the same input to the same plan, so no task needs C(run_once).
  - Fails, naming both workers, when two subnets overlap, and when a worker's variable contradicts
    its record (its instances keep their addresses for their life).
options:
  _input:
    description:
      - Host variables of the workers, for example C(ansible_play_hosts_all | map('extract', hostvars)).
    type: list
    elements: dict
    required: true
  pool:
    description: The network the subnets come from.
    type: str
    default: 10.18.0.0/16
  prefix:
    description: Prefix length of the subnets the pool hands out.
    type: int
    default: 24
  record_var:
    description: Name of the registered result of M(grove.edge.instance_subnet) on each host.
    type: str
    default: grove_network_record
  subnet_var:
    description: Name of the variable that fixes a worker's subnet.
    type: str
    default: grove_instance_subnet
  underlay_var:
    description: Name of the variable with a worker's underlay address; C(ansible_host) when unset.
    type: str
    default: grove_network_underlay_address
author:
  - Grove developers (@grove)
"""

EXAMPLES = r"""
- name: Plan the instance subnets
  ansible.builtin.set_fact:
    grove_network_members: "{{ ansible_play_hosts_all | map('extract', hostvars) | grove.edge.network_plan }}"
"""

RETURN = r"""
_value:
  description: One item per worker, in name order, with C(name), C(subnet) and C(underlay).
  type: list
  elements: dict
"""

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.grove.edge.plugins.module_utils._subnet_pool import Member, SubnetError, plan_subnets


def _record(registered):
    if not isinstance(registered, dict) or registered.get("failed") or registered.get("unreachable"):
        return {}
    record = registered.get("record")
    return record if isinstance(record, dict) else {}


def network_plan(
    hosts,
    *,
    pool="10.18.0.0/16",
    prefix=24,
    record_var="grove_network_record",
    subnet_var="grove_instance_subnet",
    underlay_var="grove_network_underlay_address",
):
    members, underlays = [], {}
    for host in hosts:
        name = host.get("inventory_hostname")
        if name is None:
            raise AnsibleFilterError("network_plan expects host variables (with inventory_hostname)")
        name = str(name)
        record = _record(host.get(record_var))
        members.append(
            Member(
                name=name,
                explicit=str(host.get(subnet_var) or ""),
                recorded=str(record.get("instance_subnet") or ""),
                remembered=dict(record.get("allocations") or {}),
            )
        )
        underlay = str(host.get(underlay_var) or host.get("ansible_host") or name)
        try:
            ipaddress.IPv4Address(underlay)
        except ValueError as exc:
            raise AnsibleFilterError(
                "%s: underlay address %r is not an IPv4 address; set %s" % (name, underlay, underlay_var)
            ) from exc
        underlays[name] = underlay
    try:
        subnets = plan_subnets(members, pool, int(prefix))
    except SubnetError as exc:
        raise AnsibleFilterError("instance subnets: %s" % exc) from exc
    seen = {}
    for name in sorted(underlays):
        if underlays[name] in seen:
            raise AnsibleFilterError(
                "%s and %s have the same underlay address %s" % (seen[underlays[name]], name, underlays[name])
            )
        seen[underlays[name]] = name
    return [{"name": name, "subnet": subnets[name], "underlay": underlays[name]} for name in sorted(subnets)]


class FilterModule:
    def filters(self):
        return {"network_plan": network_plan}
