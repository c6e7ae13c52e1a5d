#!/usr/bin/python
# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: overlay
short_description: Connect the instance subnets of all workers (VXLAN or plain routes)
version_added: 0.1.0
description:
  - Makes the instance subnets of every worker reach each other, also across clusters, with the
    kernel alone (no agent). The module computes the complete desired state of the links,
    addresses, routes, neighbour and forwarding-database entries it owns, reads the live state,
    and applies only the difference.
  - O(mode=vxlan) follows flannel's vxlan backend without multicast. The worker gets one vxlan
    device (O(device)) whose address is the network address of its instance subnet (the VTEP
    address, for example C(10.18.1.0/32)) and whose MAC is derived from that address
    (C(02:47:0a:12:01:00)). For every peer it adds C(<peer subnet> via <peer VTEP address> dev
    <device> onlink), a permanent neighbour entry (peer VTEP address to peer VTEP MAC) and a
    forwarding-database entry (peer VTEP MAC to the peer's underlay address). The device MTU
    defaults to the underlay MTU minus the 50 bytes of VXLAN headers, and TCP connections that
    leave through it have their MSS clamped to that MTU.
  - O(mode=routes) is for workers on one L2 segment; every peer subnet is routed via the peer's
    underlay address.
  - Both modes add an C(unreachable) route for the whole O(pool) (a packet for a subnet that no
    worker has fails at once instead of following a default route off the machine), enable IPv4
    forwarding, and keep instance addresses visible across workers (an nftables table
    O(table) maps instance-to-instance connections onto their own source address before the
    CNI bridge plugin's masquerade can rewrite them).
  - With O(service_network) the module also routes the service network into a port-less bridge
    (O(service_device)), so processes on the worker can open connections to service addresses,
    which M(grove.edge.service_address) then DNATs; nothing routed there leaves the worker.
  - The routes the module adds carry protocol number 118, so it finds exactly its own again.
  - O(state=absent) removes all of it (not the forwarding setting).
author:
  - Grove developers (@grove)
options:
  state:
    description: Whether the overlay should exist on the worker.
    type: str
    choices: [present, absent]
    default: present
  mode:
    description: C(vxlan) encapsulates over the underlay; C(routes) needs the workers on one L2 segment.
    type: str
    choices: [vxlan, routes]
    default: vxlan
  subnet:
    description: This worker's instance subnet. Required with O(state=present).
    type: str
  local:
    description: This worker's underlay address, one of its own addresses. Required with O(state=present).
    type: str
  peers:
    description:
      - Every other worker of the network, each with C(name), C(subnet) (its instance subnet) and
        C(underlay) (its underlay address). Workers missing from the list lose their routes.
    type: list
    elements: dict
    default: []
  pool:
    description: The network all instance subnets come from.
    type: str
    default: 10.18.0.0/16
  device:
    description: Name of the vxlan device.
    type: str
    default: grove-vx
  vni:
    description: VXLAN network identifier; the same on every worker.
    type: int
    default: 1818
  port:
    description: UDP port of the VXLAN traffic; the same on every worker.
    type: int
    default: 4789
  mtu:
    description: MTU of the vxlan device; 0 means the underlay device's MTU minus 50.
    type: int
    default: 0
  guard:
    description: Add the C(unreachable) route for O(pool).
    type: bool
    default: true
  service_network:
    description: The service address network routed into O(service_device); empty to leave it out.
    type: str
    default: 10.30.0.0/16
  service_device:
    description: Name of the port-less bridge that service addresses are routed to.
    type: str
    default: grove-svc
  table:
    description: Name of the nftables table (family C(ip)) the module owns.
    type: str
    default: grove_overlay
attributes:
  check_mode:
    description: Lists the steps it would take and changes nothing.
    support: full
  diff_mode:
    description:
      Shows the owned links, routes, neighbour and fdb entries and the nftables table, before and after.
    support: full
notes:
  - Needs root, C(ip) and C(bridge) from iproute2, and C(nft) on the worker.
  - Changing O(device) or O(service_device) leaves the old device behind; remove the overlay with
    O(state=absent) first.
"""

EXAMPLES = r"""
- name: Connect this worker to its peers over VXLAN
  grove.edge.overlay:
    subnet: 10.18.1.0/24
    local: 10.99.1.11
    peers:
      - {name: c1w2, subnet: 10.18.2.0/24, underlay: 10.99.1.12}
      - {name: c2w1, subnet: 10.18.3.0/24, underlay: 10.99.2.11}

- name: Workers on one L2 segment need no encapsulation
  grove.edge.overlay:
    mode: routes
    subnet: 10.18.1.0/24
    local: 10.99.1.11
    peers:
      - {name: c1w2, subnet: 10.18.2.0/24, underlay: 10.99.1.12}

- name: Remove the overlay
  grove.edge.overlay:
    state: absent
"""

RETURN = r"""
actions:
  description: The steps taken (in check mode, the steps that would be taken).
  returned: always
  type: list
  elements: str
  sample: ["add link grove-vx (vxlan)", "add route 10.18.2.0/24 via 10.18.2.0 dev grove-vx onlink"]
vtep:
  description: This worker's VTEP address and MAC (vxlan mode).
  returned: when state is present and mode is vxlan
  type: dict
  sample: {address: 10.18.1.0, mac: "02:47:0a:12:01:00"}
mtu:
  description: MTU of the vxlan device (vxlan mode).
  returned: when state is present and mode is vxlan
  type: int
  sample: 1450
state:
  description: The owned state after the module ran (in check mode, as it would be).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.grove.edge.plugins.module_utils import _overlay as overlay
from ansible_collections.grove.edge.plugins.module_utils._nft import Nft, NftError, same_table

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    mode=dict(type="str", choices=["vxlan", "routes"], default="vxlan"),
    subnet=dict(type="str"),
    local=dict(type="str"),
    peers=dict(type="list", elements="dict", default=[]),
    pool=dict(type="str", default=overlay.DEFAULT_POOL),
    device=dict(type="str", default=overlay.DEFAULT_DEVICE),
    vni=dict(type="int", default=overlay.DEFAULT_VNI),
    port=dict(type="int", default=overlay.DEFAULT_PORT),
    mtu=dict(type="int", default=0),
    guard=dict(type="bool", default=True),
    service_network=dict(type="str", default=overlay.DEFAULT_SERVICE_NETWORK),
    service_device=dict(type="str", default=overlay.DEFAULT_SERVICE_DEVICE),
    table=dict(type="str", default=overlay.DEFAULT_TABLE),
)
FORWARDING = "/proc/sys/net/ipv4/ip_forward"


class OverlayModule:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.present = self.params["state"] == "present"
        self.tools = {
            name: module.get_bin_path(name, required=True, opt_dirs=["/usr/sbin", "/sbin"])
            for name in ("ip", "bridge", "nft")
        }
        self.nft = Nft(self._run, self.tools["nft"])
        self.config = None
        if self.present:
            missing = [name for name in ("subnet", "local") if not self.params[name]]
            if missing:
                module.fail_json(msg="overlay: %s required with state=present" % " and ".join(missing))
        try:
            if self.present:
                self.config = overlay.check_config(self.params)
            else:
                self.config = overlay.removal_config(self.params)
        except overlay.OverlayError as exc:
            module.fail_json(msg="overlay: invalid options: %s" % exc)

    def _run(self, argv, data=None):
        argv = [self.tools.get(argv[0], argv[0]), *argv[1:]]
        return self.module.run_command(argv, data=data, expand_user_and_vars=False)

    def _json(self, argv, what):
        rc, stdout, stderr = self._run(argv)
        if rc != 0:
            self.module.fail_json(
                msg="overlay: cannot read %s: %s" % (what, stderr.strip()), stdout=stdout, stderr=stderr
            )
        return stdout

    def read_live(self):
        config = self.config
        addr_json = self._json(["ip", "-j", "-d", "addr", "show"], "the links")
        names = (config.device, config.service_device)
        live = overlay.State(
            links=overlay.parse_links(addr_json, names),
            routes=overlay.parse_routes(
                self._json(
                    ["ip", "-j", "route", "show", "table", "main", "proto", str(overlay.ROUTE_PROTOCOL)],
                    "the routes",
                )
            ),
        )
        vxlan = live.links.get(config.device)
        if vxlan is not None and vxlan.kind == overlay.VXLAN:
            live.neighbours = overlay.parse_neighbours(
                self._json(["ip", "-j", "neigh", "show", "dev", config.device], "the neighbour entries"),
                config.device,
            )
            live.fdb = overlay.parse_fdb(
                self._json(["bridge", "-j", "fdb", "show", "dev", config.device], "the fdb entries"),
                config.device,
            )
        try:
            with open(FORWARDING) as handle:
                live.forwarding = handle.read().strip() == "1"
        except OSError:
            live.forwarding = None
        return addr_json, live

    def desired(self, addr_json):
        if not self.present:
            return overlay.State(), None
        config = self.config
        underlay_dev, underlay_mtu = overlay.underlay_of(addr_json, config.local)
        if underlay_dev is None:
            self.module.fail_json(
                msg="overlay: local %s is not an address of this worker; give its underlay address "
                "(role grove_network: grove_network_underlay_address)" % config.local
            )
        return overlay.desired_state(config, underlay_dev, underlay_mtu), overlay.render_table(config)

    def step(self, step):
        if step.argv is None:
            try:
                with open(FORWARDING, "w") as handle:
                    handle.write("1\n")
            except OSError as exc:
                self.module.fail_json(msg="overlay: %s: %s" % (step.description, exc))
            return
        rc, stdout, stderr = self._run(step.argv)
        if rc != 0:
            self.module.fail_json(
                msg="overlay: %s failed: %s" % (step.description, stderr.strip() or "exit status %d" % rc),
                stdout=stdout,
                stderr=stderr,
                command=step.argv,
            )

    def run(self):
        config = self.config
        try:
            live_table = self.nft.list_table("ip", config.table)
        except NftError as exc:
            self.module.fail_json(msg="overlay: %s" % exc, stdout=exc.stdout, stderr=exc.stderr)
        addr_json, live = self.read_live()
        desired, table = self.desired(addr_json)
        steps = overlay.plan(desired, live)
        if not self.present:
            steps = [s for s in steps if s.argv is not None]  # forwarding stays as it is
            desired.forwarding = live.forwarding
        table_changed = (table is not None and not same_table(live_table, table)) or (
            table is None and live_table is not None
        )
        actions = [s.description for s in steps]
        if table_changed:
            actions.append(("replace" if table else "remove") + " nftables table ip %s" % config.table)
        if not self.module.check_mode:
            for step in steps:
                self.step(step)
            if table_changed:
                try:
                    if table is None:
                        self.nft.delete_table("ip", config.table)
                    else:
                        self.nft.replace_table("ip", config.table, table)
                except NftError as exc:
                    self.module.fail_json(
                        msg="overlay: %s" % exc, stdout=exc.stdout, stderr=exc.stderr, actions=actions
                    )
        before = dict(live.describe(), table=live_table or "")
        after = dict(desired.describe(), table=table or "")
        result = dict(
            changed=bool(actions), actions=actions, state=after, diff={"before": before, "after": after}
        )
        if self.present and config.mode == overlay.VXLAN:
            link = desired.links[config.device]
            result["vtep"] = {"address": str(overlay.vtep_address(config.subnet)), "mac": link.mac}
            result["mtu"] = link.mtu
        self.module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    OverlayModule(module).run()


if __name__ == "__main__":
    main()
