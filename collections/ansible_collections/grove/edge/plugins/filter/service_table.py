# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: service_table
short_description: The complete service list for grove.edge.service_address, built from the hosts
version_added: "0.1.0"
description:
  - For playbooks without a store. Takes the services being deployed and the host variables of
    all workers, and returns every service that should have a round-robin address, with its
    address, ports and backends, the O(grove.edge.service_address#module:services) option.
  - Services already in the workers' tables (read with M(grove.edge.service_address_info) and
    registered) keep their address and ports; the one most workers agree on wins. A deployed
    service keeps its current address unless its descriptor fixes another; new ones get their
    descriptor's C(rr_ip) or an address derived from a hash of their name.
  - A fixed C(rr_ip) that another service already has fails with a message naming both.
  - Backends are the addresses of every RUNNING instance of the service on any worker, from the
    registered M(grove.edge.node_info) results.
options:
  _input:
    description:
      - The services being deployed, each with C(service) and optionally C(rr_ip) (fixed address)
        and C(port) (the descriptor's port field) or C(ports) (list of C(port/protocol)).
    type: list
    elements: dict
    required: true
  hosts:
    description: Host variables of all workers, for example C(groups['all'] | map('extract', hostvars)).
    type: list
    elements: dict
    required: true
  removed:
    description: Fully qualified names of services to drop (undeploy).
    type: list
    elements: str
    default: []
  leaving:
    description:
      - Instances that are about to be removed. They are no backends any more, so that the
        tables can be updated before the instances stop and no new connection reaches them.
      - Each is a removal of M(grove.edge.schedule), a dict with C(worker), C(service) and
        C(instance_number). Only the copy on that worker leaves, so a duplicate removed from one
        worker keeps the copy that stays on another as a backend. A plain instance id means the
        instance on every worker.
    type: list
    elements: raw
    default: []
  info_var:
    description: Name of the registered result of M(grove.edge.service_address_info) on each host.
    type: str
    default: grove_service_address_info
  facts_var:
    description: Name of the registered result of M(grove.edge.node_info) on each host.
    type: str
    default: grove_node_info
author:
  - Grove developers (@grove)
"""

EXAMPLES = r"""
- name: Build the service list for every worker's table
  ansible.builtin.set_fact:
    grove_services: >-
      {{ [{'service': 'clientsrvr.test.nginx.test', 'rr_ip': '', 'port': '6080:80/tcp'}]
         | grove.edge.service_table(groups['all'] | map('extract', hostvars)) }}
"""

RETURN = r"""
_value:
  description: Every service with C(service), C(rr_ip), C(ports) and C(backends), in name order.
  type: list
  elements: dict
"""

from collections import Counter

from ansible.errors import AnsibleFilterError
from ansible_collections.grove.edge.plugins.module_utils._descriptor import instance_id as _instance_id
from ansible_collections.grove.edge.plugins.module_utils._service_address import (
    ServiceAddressError,
    desired_services,
)


def _ok(registered):
    return isinstance(registered, dict) and not registered.get("failed") and not registered.get("unreachable")


def recorded_services(hosts, info_var):
    """Per service, the (rr_ip, ports) most workers' tables agree on."""
    votes = {}
    for host in hosts:
        registered = host.get(info_var)
        if not _ok(registered):
            continue
        for entry in registered.get("services") or []:
            key = (entry.get("rr_ip", ""), tuple(entry.get("ports") or []))
            votes.setdefault(entry.get("service"), Counter())[key] += 1
    recorded = []
    for name in sorted(votes):
        (rr_ip, ports), _count = sorted(votes[name].items(), key=lambda item: (-item[1], item[0]))[0]
        recorded.append({"service": name, "rr_ip": rr_ip, "ports": list(ports)})
    return recorded


def _leaving_keys(leaving):
    """(worker or None, instance id) of each leaving instance; None stands for every worker."""
    keys = set()
    for entry in leaving or []:
        if isinstance(entry, str):
            keys.add((None, entry))
            continue
        try:
            keys.add((entry["worker"], _instance_id(entry["service"], int(entry["instance_number"]))))
        except (KeyError, TypeError, ValueError) as exc:
            raise AnsibleFilterError(
                "service_table: leaving needs instance ids or removals with worker, service and "
                "instance_number, got %r" % (entry,)
            ) from exc
    return keys


def service_table(
    services,
    hosts,
    *,
    removed=None,
    leaving=None,
    info_var="grove_service_address_info",
    facts_var="grove_node_info",
):
    hosts = list(hosts)
    leaving = _leaving_keys(leaving)
    instances = []
    for host in hosts:
        registered = host.get(facts_var)
        if _ok(registered):
            worker = host.get("inventory_hostname")
            found = (registered.get("node") or {}).get("instances") or []
            instances += [
                instance
                for instance in found
                if (None, instance.get("id")) not in leaving and (worker, instance.get("id")) not in leaving
            ]
    try:
        return desired_services(
            [dict(s) for s in services],
            recorded=recorded_services(hosts, info_var),
            instances=instances,
            removed=list(removed or []),
        )
    except ServiceAddressError as exc:
        raise AnsibleFilterError("service addresses: %s" % exc) from exc


class FilterModule:
    def filters(self):
        return {"service_table": service_table}
