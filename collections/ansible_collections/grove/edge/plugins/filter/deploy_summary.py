# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: deploy_summary
short_description: One line per deployed instance, for the end of a deploy playbook
version_added: "0.1.0"
description:
  - Collects the registered results of M(grove.edge.instance) from the workers' host variables and
    returns one record per instance with its fully qualified name, cluster, worker, status,
    address and host ports, sorted by instance id.
options:
  _input:
    description: Host variables of the workers.
    type: list
    elements: dict
    required: true
  result_var:
    description: Name of the registered loop result of M(grove.edge.instance) on each host.
    type: str
    default: grove_deployed
author:
  - Grove developers (@grove)
"""

EXAMPLES = r"""
- name: Summarise
  ansible.builtin.debug:
    msg: "{{ groups['all'] | map('extract', hostvars) | grove.edge.deploy_summary }}"
"""

RETURN = r"""
_value:
  description: Records with C(instance), C(cluster), C(worker), C(status), C(address), C(host_ports).
  type: list
  elements: dict
"""


def deploy_summary(hosts, result_var="grove_deployed"):
    rows = []
    for host in hosts:
        registered = host.get(result_var) or {}
        for result in registered.get("results", []):
            instance = result.get("instance") or {}
            item = result.get("item") or {}
            rows.append(
                {
                    "instance": instance.get("id")
                    or "%s.instance.%s" % (item.get("service"), item.get("instance_number")),
                    "cluster": item.get("cluster"),
                    "worker": host.get("inventory_hostname"),
                    "status": "FAILED" if result.get("failed") else instance.get("status"),
                    "address": instance.get("address"),
                    "host_ports": instance.get("host_ports", []),
                    "detail": result.get("msg", "") if result.get("failed") else "",
                }
            )
    return sorted(rows, key=lambda row: row["instance"])


class FilterModule:
    def filters(self):
        return {"deploy_summary": deploy_summary}
