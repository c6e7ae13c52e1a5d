# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cluster_map
short_description: Group the workers' node facts by cluster, for grove.edge.schedule
version_added: "0.1.0"
description:
  - "Takes the host variables of the inventory's workers and returns
    C({cluster: {workers: {host: node}}}), the O(grove.edge.schedule#module:clusters) option of
    M(grove.edge.schedule)."
  - A host's cluster is its C(grove_cluster) variable, else its first group.
  - A host without node facts (it did not answer) is listed with C(reachable=false), so the
    scheduler names it among the rejected workers instead of silently forgetting it.
options:
  _input:
    description: Host variables of the workers, for example C(groups['all'] | map('extract', hostvars)).
    type: list
    elements: dict
    required: true
  facts_var:
    description: Name of the registered result of M(grove.edge.node_info) on each host.
    type: str
    default: grove_node_info
author:
  - Grove developers (@grove)
"""

EXAMPLES = r"""
- name: Build the clusters for the scheduler
  ansible.builtin.set_fact:
    grove_clusters: "{{ groups['all'] | map('extract', hostvars) | grove.edge.cluster_map }}"
"""

RETURN = r"""
_value:
  description: Clusters with their workers' node facts.
  type: dict
"""

from ansible.errors import AnsibleFilterError


def _cluster_of(host):
    cluster = host.get("grove_cluster")
    if cluster:
        return str(cluster)
    groups = [g for g in host.get("group_names", []) if g not in ("all", "ungrouped")]
    if not groups:
        raise AnsibleFilterError(
            "host %s belongs to no cluster group and sets no grove_cluster" % host.get("inventory_hostname")
        )
    return groups[0]


def cluster_map(hosts, facts_var="grove_node_info"):
    clusters = {}
    for host in hosts:
        name = host.get("inventory_hostname")
        if name is None:
            raise AnsibleFilterError("cluster_map expects host variables (with inventory_hostname)")
        registered = host.get(facts_var) or {}
        node = registered.get("node") if not registered.get("failed") else None
        if node is None:
            node = {"hostname": name, "reachable": False, "instances": []}
        else:
            node = dict(node, reachable=True)
        clusters.setdefault(_cluster_of(host), {"workers": {}})["workers"][name] = node
    return clusters


class FilterModule:
    def filters(self):
        return {"cluster_map": cluster_map}
