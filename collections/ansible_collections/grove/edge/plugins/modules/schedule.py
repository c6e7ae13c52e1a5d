#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: schedule
short_description: Place service instances onto clusters and workers
version_added: 0.1.0
description:
  - Decides, on the controller, which worker runs each requested service instance, the way
    Oakestra's two-level scheduler does. First a cluster is chosen from the aggregated free
    resources of its reachable workers, then a worker inside it. When every worker of the best
    cluster turns out to be unsuitable, the next cluster is tried.
  - Workers are filtered by reachability, container runtime (virtualization), CPU architecture,
    free vCPUs, memory, GPUs, storage and free host ports, and by C(direct) constraints (a target
    cluster and a list of eligible nodes).
  - Resources already reserved by the instances a worker reports (every status except C(DEAD),
    C(COMPLETED), C(FAILED) and C(UNDEPLOYED)) and by the placements made earlier in the same
    call are not available again, so no worker is overcommitted.
  - An instance that already exists on a reachable worker that still satisfies its constraints
    stays where it is, which makes repeated deployments idempotent. A C(DEAD) or C(FAILED)
    instance stays only if it still fits there; otherwise it is placed anew and RV(placements[].moved_from)
    names its old worker.
  - The module never changes anything; it always reports C(changed=false).
  - The service requests typically come from M(grove.edge.descriptor), which validates an Oakestra
    SLA v2 deployment descriptor and returns them as RV(grove.edge.descriptor#module:services).
author:
  - Grove developers (@grove)
options:
  services:
    description:
      - The service instances to place.
      - Required unless O(undeploy) is given.
    type: list
    elements: dict
    suboptions:
      service:
        description:
          - Fully qualified service name, C(app.appns.service.servicens).
        type: str
        required: true
      requirements:
        description:
          - What one instance of the service needs.
        type: dict
        suboptions:
          vcpus:
            description:
              - Virtual CPUs, fractions allowed.
            type: float
            default: 0
          memory:
            description:
              - Memory in MB.
            type: int
            default: 0
          vgpus:
            description:
              - Number of GPUs.
            type: int
            default: 0
          storage:
            description:
              - Free disk space in MB.
            type: int
            default: 0
          virtualization:
            description:
              - The runtime the worker must offer.
            type: str
            default: container
          architecture:
            description:
              - CPU architecture the worker must have, for example V(amd64) or V(arm64).
              - Any architecture when omitted.
            type: str
      instance_numbers:
        description:
          - The instance numbers to place.
        type: list
        elements: int
        default: [0]
      constraints:
        description:
          - Placement constraints. Only C(direct) is supported.
        type: list
        elements: dict
        suboptions:
          type:
            description:
              - Constraint type.
            type: str
            required: true
            choices: [direct]
          cluster:
            description:
              - The only cluster the service may run in.
            type: str
          node:
            description:
              - The only eligible workers, separated by semicolons, for example V(node1;node2).
            type: str
      host_ports:
        description:
          - Host ports the instance publishes, like V(6080/tcp); two instances using the same host
            port never share a worker.
        type: list
        elements: str
  clusters:
    description:
      - "The infrastructure, as C({cluster_name: {workers: {worker_name: facts}}}) where C(facts)
        is what M(grove.edge.node_info) reports for the worker."
    type: dict
    required: true
  strategy:
    description:
      - V(spread) puts each instance where the most resources are free (vCPUs, then memory),
        like Oakestra.
      - V(pack) puts it where the least resources that still fit are free (best fit).
      - Ties are broken by name, so the same input always gives the same placements.
    type: str
    choices: [spread, pack]
    default: spread
  fail_on_unplaced:
    description:
      - Fail when at least one instance cannot be placed; the message lists each one with the
        reason every worker was rejected.
      - With V(false) the placements that succeeded are returned for deployment and
        RV(unplaced) says what could not be placed.
    type: bool
    default: true
  undeploy:
    description:
      - Instead of placing, list the instances to remove as RV(removals) (and as RV(stranded) those
        on workers that do not answer). Mutually exclusive with O(services).
    type: dict
    suboptions:
      services:
        description: Fully qualified names of the services whose instances go.
        type: list
        elements: str
        required: true
      instance:
        description: Only this instance number.
        type: int
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it once on the controller, for example with C(delegate_to=localhost) and C(run_once=true).
seealso:
  - module: grove.edge.node_info
  - module: grove.edge.instance
"""

EXAMPLES = r"""
- name: Gather the facts of every worker
  grove.edge.node_info:
  register: node

- name: Place two nginx instances
  grove.edge.schedule:
    services:
      - service: clientsrvr.test.nginx.test
        requirements:
          vcpus: 1
          memory: 100
        instance_numbers: [0, 1]
        host_ports: [6080/tcp]
        constraints:
          - type: direct
            cluster: edge1
            node: worker1;worker2
    clusters:
      edge1:
        workers:
          worker1: "{{ hostvars['worker1'].node }}"
          worker2: "{{ hostvars['worker2'].node }}"
    strategy: pack
  delegate_to: localhost
  run_once: true
  register: plan

- name: Place every microservice of a deployment descriptor
  grove.edge.schedule:
    services: "{{ descriptor_plan.services }}"
    clusters: "{{ grove_clusters }}"
    fail_on_unplaced: false
  delegate_to: localhost
  run_once: true
  register: plan

- name: Show where each instance goes
  ansible.builtin.debug:
    msg: "{{ item.service }}.instance.{{ item.instance_number }} -> {{ item.cluster }}/{{ item.worker }}"
  loop: "{{ plan.placements }}"
"""

RETURN = r"""
placements:
  description: One entry per placed instance, in request order.
  returned: success
  type: list
  elements: dict
  contains:
    service:
      description: Fully qualified service name.
      type: str
      returned: always
      sample: clientsrvr.test.nginx.test
    instance_number:
      description: Instance number.
      type: int
      returned: always
      sample: 0
    cluster:
      description: Cluster chosen.
      type: str
      returned: always
      sample: edge1
    worker:
      description: Worker chosen, as named in O(clusters).
      type: str
      returned: always
      sample: worker1
    existing:
      description: Whether the instance already exists on that worker and stays there.
      type: bool
      returned: always
      sample: false
    status:
      description: Always C(NODE_SCHEDULED).
      type: str
      returned: always
      sample: NODE_SCHEDULED
    instance_status:
      description: Status the worker reports for the instance.
      type: str
      returned: when RV(placements[].existing) is true
      sample: RUNNING
    moved_from:
      description:
        - C(cluster/worker) of a former instance with this number that cannot stay there (its worker
          is unreachable, no longer allowed by the constraints, or too full to restart it).
      type: str
      returned: when the instance is moved
      sample: edge1/worker2
  sample:
    - service: clientsrvr.test.nginx.test
      instance_number: 0
      cluster: edge1
      worker: worker1
      existing: false
      status: NODE_SCHEDULED
removals:
  description:
    - The copies of the requested services to remove once the placements run, on workers that
      answer; sorted by cluster, worker, service and instance number.
    - Surplus instance numbers, copies that moved (RV(placements[].moved_from)), duplicates left by
      a worker that came back; with O(undeploy), every copy asked for.
  returned: success
  type: list
  elements: dict
  contains:
    service:
      description: Fully qualified service name.
      type: str
      returned: always
      sample: clientsrvr.test.nginx.test
    instance_number:
      description: Instance number.
      type: int
      returned: always
      sample: 1
    cluster:
      description: Cluster of the worker that holds the copy.
      type: str
      returned: always
      sample: edge1
    worker:
      description: Worker that holds the copy.
      type: str
      returned: always
      sample: worker2
stranded:
  description: With O(undeploy), the copies on workers that do not answer; they are removed once they do.
  returned: when O(undeploy) is given
  type: list
  elements: dict
  sample: [{service: clientsrvr.test.nginx.test, instance_number: 0, cluster: edge1, worker: worker3}]
unplaced:
  description: One line per instance that could not be placed, with the reasons.
  returned: success
  type: list
  elements: str
  sample: ["clientsrvr.test.nginx.test instance 1: NO_WORKER_CAPACITY (edge1/worker1: needs 2 vcpus, 1 free)"]
failures:
  description: One entry per instance that could not be placed.
  returned: success or when O(fail_on_unplaced) fails the task
  type: list
  elements: dict
  contains:
    service:
      description: Fully qualified service name.
      type: str
      returned: always
      sample: clientsrvr.test.nginx.test
    instance_number:
      description: Instance number.
      type: int
      returned: always
      sample: 1
    status:
      description:
        - Oakestra's scheduling status, one of C(TargetClusterNotFound), C(TargetClusterNotActive),
          C(TargetClusterNoCapacity), C(NoActiveClusterWithCapacity), C(NO_WORKER_CAPACITY),
          C(NO_QUALIFIED_WORKER_FOUND).
      type: str
      returned: always
      sample: NO_WORKER_CAPACITY
    moved_from:
      description: As for RV(placements[].moved_from).
      type: str
      returned: when a former instance cannot stay where it is
      sample: edge1/worker2
    running_on:
      description:
        - C(cluster/worker) where a copy of the instance still runs with its former spec; it is kept
          (not listed in RV(removals)) because no new home was found.
      type: str
      returned: when such a copy exists
      sample: edge1/worker2
    reasons:
      description:
        - Why each cluster (key C(cluster)) or worker (key C(cluster/worker)) was rejected.
      type: dict
      returned: always
      sample:
        edge1/worker1: needs 2 vcpus, 1 free
        edge1/worker2: "no 'container' runtime (has: none)"
"""

# Ansible wants the documentation before any import (validate-modules: import-before-documentation).
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils._scheduler import (
    SchedulerInputError,
    schedule,
    undeploy,
)

REQUIREMENTS_SPEC = dict(
    vcpus=dict(type="float", default=0),
    memory=dict(type="int", default=0),
    vgpus=dict(type="int", default=0),
    storage=dict(type="int", default=0),
    virtualization=dict(type="str", default="container"),
    architecture=dict(type="str"),
)

CONSTRAINT_SPEC = dict(
    type=dict(type="str", required=True, choices=["direct"]),
    cluster=dict(type="str"),
    node=dict(type="str"),
)

SERVICE_SPEC = dict(
    service=dict(type="str", required=True),
    requirements=dict(type="dict", options=REQUIREMENTS_SPEC),
    instance_numbers=dict(type="list", elements="int", default=[0]),
    constraints=dict(type="list", elements="dict", options=CONSTRAINT_SPEC),
    host_ports=dict(type="list", elements="str"),
)

UNDEPLOY_SPEC = dict(
    services=dict(type="list", elements="str", required=True),
    instance=dict(type="int"),
)

ARGUMENT_SPEC = dict(
    services=dict(type="list", elements="dict", options=SERVICE_SPEC),
    undeploy=dict(type="dict", options=UNDEPLOY_SPEC),
    clusters=dict(type="dict", required=True),
    strategy=dict(type="str", choices=["spread", "pack"], default="spread"),
    fail_on_unplaced=dict(type="bool", default=True),
)


def describe_failures(failures):
    lines = []
    for failure in failures:
        reasons = "; ".join(f"{where}: {why}" for where, why in failure["reasons"].items())
        line = f"{failure['service']} instance {failure['instance_number']}: {failure['status']}"
        line += f" ({reasons})" if reasons else ""
        if failure.get("running_on"):
            line += f"; it keeps running on {failure['running_on']} with its former spec"
        lines.append(line)
    return lines


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("services", "undeploy")],
        required_one_of=[("services", "undeploy")],
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False)
    try:
        if params["undeploy"]:
            plan = undeploy(
                params["undeploy"]["services"], params["clusters"], params["undeploy"]["instance"]
            )
        else:
            plan = schedule(params["services"], params["clusters"], params["strategy"])
    except SchedulerInputError as error:
        module.fail_json(msg=f"cannot schedule: {error}", **result)
    result.update(plan, unplaced=describe_failures(plan["failures"]))
    if plan["failures"] and params["fail_on_unplaced"]:
        lines = result["unplaced"]
        module.fail_json(
            msg=f"{len(lines)} instance(s) could not be placed:\n" + "\n".join(lines),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
