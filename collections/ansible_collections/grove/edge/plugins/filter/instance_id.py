# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: instance_id
short_description: Container id of a placed instance
version_added: "0.1.0"
description:
  - Turns a placement of M(grove.edge.schedule) (or any dict with C(service) and
    C(instance_number)) into the instance's container id C(app.appns.svc.svcns.instance.N).
options:
  _input:
    description: A dict with C(service) and C(instance_number).
    type: dict
    required: true
author:
  - Grove developers (@grove)
"""

EXAMPLES = r"""
- name: Ids of the instances placed on this worker
  ansible.builtin.debug:
    msg: "{{ placements | selectattr('worker', 'equalto', inventory_hostname)
      | map('grove.edge.instance_id') | list }}"
"""

RETURN = r"""
_value:
  description: The container id.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.grove.edge.plugins.module_utils._descriptor import instance_id as _instance_id


def instance_id(placement):
    try:
        return _instance_id(placement["service"], int(placement["instance_number"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(
            "instance_id needs service and instance_number, got %r" % (placement,)
        ) from exc


class FilterModule:
    def filters(self):
        return {"instance_id": instance_id}
