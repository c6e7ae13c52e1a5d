# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs a CNI plugin chain directly, the way libcni does, without a container runtime in between.

`ctr --cni` only reads /etc/cni/net.d and /opt/cni/bin; Grove needs its own network per worker,
so it speaks the CNI protocol itself: each plugin is executed with CNI_* variables in its
environment and its configuration on stdin. ADD results are cached with the exact configuration
and runtime arguments in libcni's format (/var/lib/cni/results/<network>-<id>-<ifname>), so DEL
can replay what ADD did even after the instance's spec has changed or its container is gone.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shlex
from collections.abc import Callable
from typing import NamedTuple

CNI_VERSION = "1.0.0"
CACHE_KIND = "cniCacheV1"
DEFAULT_CACHE_DIR = "/var/lib/cni"
DEFAULT_IFNAME = "eth0"
# Plugins shell out to iptables/ip/tc: make sure the sbin directories are searched even when the
# calling environment (an SSH session of a non-login shell) left them out of PATH.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Chains the plugins share between all containers; never removed on behalf of one.
SHARED_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")


class Attachment(NamedTuple):
    """Which container's interface: the CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME of a call."""

    container_id: str
    netns: str
    ifname: str = DEFAULT_IFNAME


class CniError(RuntimeError):
    """A plugin failed; carries the plugin's output for fail_json."""

    def __init__(self, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr


def network_config(
    name: str, bridge: str, subnet: str, routes: list[str], with_bandwidth: bool, *, mtu: int = 0
) -> dict:
    """The grove network: bridge + host-local IPAM, portmap, and bandwidth when limits are asked.

    `mtu` (0: the kernel's default) matters across workers: over the VXLAN overlay a packet
    carries 50 bytes more, so instances must send less than the underlay takes.
    """
    # host-local's default gateway, which the bridge plugin (isGateway) puts on the bridge.
    gateway = str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
    plugins: list[dict] = [
        {
            "type": "bridge",
            "bridge": bridge,
            "isGateway": True,
            "ipMasq": True,
            # Lets an instance reach itself through a published host port.
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet}]],
                # With the gateway spelled out, the result lists the routes as the kernel has
                # them, and the bridge plugin's CHECK can match them.
                "routes": [{"dst": route, "gw": gateway} for route in routes],
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]
    if mtu:
        plugins[0]["mtu"] = mtu
    if with_bandwidth:
        plugins.append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
    return {"cniVersion": CNI_VERSION, "name": name, "plugins": plugins}


def port_mappings(ports: list) -> list[dict]:
    """CNI `portMappings` capability arguments from objects with host_port/container_port/protocol."""
    return [
        {"hostPort": port.host_port, "containerPort": port.container_port, "protocol": port.protocol}
        for port in ports
    ]


def bandwidth_limits(in_kbit: int, out_kbit: int) -> dict:
    """CNI `bandwidth` capability arguments; rates in bit/s, bursts in bits."""
    limits = {}
    for direction, kbit in (("ingress", in_kbit), ("egress", out_kbit)):
        if kbit > 0:
            rate = kbit * 1000
            limits[direction + "Rate"] = rate
            # A tenth of a second of traffic, but never less than a few full-size frames, which
            # tc's token bucket needs to pass packets at all.
            limits[direction + "Burst"] = max(rate // 10, 8 * 1500 * 8)
    return limits


def _plugin_config(conflist: dict, plugin: dict, capability_args: dict, prev_result: dict | None) -> dict:
    config = dict(plugin)
    config["name"] = conflist["name"]
    config["cniVersion"] = conflist["cniVersion"]
    if prev_result is not None:
        config["prevResult"] = prev_result
    runtime = {
        capability: capability_args[capability]
        for capability, enabled in plugin.get("capabilities", {}).items()
        if enabled and capability in capability_args
    }
    if runtime:
        config["runtimeConfig"] = runtime
    return config


def _error_text(stdout: str, stderr: str) -> str:
    # Plugins report errors as {"code": N, "msg": ..., "details": ...} on stdout.
    try:
        error = json.loads(stdout)
    except ValueError:
        error = None
    if isinstance(error, dict) and "msg" in error:
        details = error.get("details")
        return error["msg"] + (": " + details if details else "")
    return (stderr or stdout).strip() or "no output"


def _search_path() -> list[str]:
    search_path = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return search_path + [d for d in SBIN_DIRS if d not in search_path]


def find_program(name: str) -> str | None:
    for directory in _search_path():
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return None


class Cni:
    """One network (a conflist) attached to containers by executing its plugins."""

    def __init__(
        self, run: Callable[..., tuple[int, str, str]], bin_dir: str, cache_dir: str = DEFAULT_CACHE_DIR
    ) -> None:
        self._run = run
        self.bin_dir = bin_dir
        self.cache_dir = cache_dir

    def cache_path(self, network: str, container_id: str, ifname: str = DEFAULT_IFNAME) -> str:
        return os.path.join(self.cache_dir, "results", f"{network}-{container_id}-{ifname}")

    def cached(self, network: str, container_id: str, ifname: str = DEFAULT_IFNAME) -> dict | None:
        """The cache entry of an earlier ADD (config, capabilityArgs, result), or None."""
        try:
            with open(self.cache_path(network, container_id, ifname)) as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("kind") != CACHE_KIND:
            return None
        try:
            entry["config"] = json.loads(base64.b64decode(entry.get("config", "")))
        except ValueError:
            return None
        return entry

    def _exec(self, plugin_type: str, command: str, attachment: Attachment, config: dict) -> str:
        path = os.path.join(self.bin_dir, plugin_type)
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": attachment.container_id,
            "CNI_NETNS": attachment.netns,
            "CNI_IFNAME": attachment.ifname,
            "CNI_PATH": self.bin_dir,
            "PATH": os.pathsep.join(_search_path()),
        }
        if not os.access(path, os.X_OK):
            raise CniError(f"CNI plugin {plugin_type} not found in {self.bin_dir}")
        rc, stdout, stderr = self._run([path], data=json.dumps(config), env=env)
        if rc != 0:
            message = f"CNI {command} of plugin {plugin_type} failed: {_error_text(stdout, stderr)}"
            raise CniError(message, stdout, stderr)
        return stdout

    def add(self, conflist: dict, attachment: Attachment, capability_args: dict) -> dict:
        """Attach the container; on failure, undo what the chain did so far, then raise."""
        result: dict | None = None
        try:
            for plugin in conflist["plugins"]:
                config = _plugin_config(conflist, plugin, capability_args, result)
                stdout = self._exec(plugin["type"], "ADD", attachment, config)
                try:
                    result = json.loads(stdout)
                except ValueError as exc:
                    raise CniError(
                        f"CNI ADD of plugin {plugin['type']} printed no JSON result", stdout
                    ) from exc
        except CniError:
            try:
                self._delete_chain(conflist, attachment, capability_args, result)
            except CniError:
                pass  # the ADD error is the one worth reporting
            raise
        if result is None:
            raise CniError(f"network {conflist['name']} has no plugins")
        self._write_cache(conflist, attachment, capability_args, result)
        return result

    def delete(
        self, conflist: dict, attachment: Attachment, capability_args: dict, prev_result: dict | None
    ) -> None:
        """DEL in reverse plugin order, then drop the cache entry. Safe to repeat."""
        self._delete_chain(conflist, attachment, capability_args, prev_result)
        try:
            os.unlink(self.cache_path(conflist["name"], attachment.container_id, attachment.ifname))
        except FileNotFoundError:
            pass

    def delete_cached(self, entry: dict, container_id: str, netns: str) -> None:
        attachment = Attachment(container_id, netns, entry.get("ifName") or DEFAULT_IFNAME)
        self.delete(entry["config"], attachment, entry.get("capabilityArgs") or {}, entry.get("result"))

    def _delete_chain(
        self, conflist: dict, attachment: Attachment, capability_args: dict, prev_result: dict | None
    ) -> None:
        errors = []
        for plugin in reversed(conflist["plugins"]):
            config = _plugin_config(conflist, plugin, capability_args, prev_result)
            try:
                self._exec(plugin["type"], "DEL", attachment, config)
            except CniError as exc:
                # Keep going: one stuck plugin must not leave the others' state behind.
                errors.append(exc)
        if errors:
            raise CniError("; ".join(str(exc) for exc in errors), errors[0].stdout, errors[0].stderr)

    def _write_cache(
        self, conflist: dict, attachment: Attachment, capability_args: dict, result: dict
    ) -> None:
        entry = {
            "kind": CACHE_KIND,
            "containerId": attachment.container_id,
            "config": base64.b64encode(json.dumps(conflist).encode()).decode(),
            "ifName": attachment.ifname,
            "networkName": conflist["name"],
            "capabilityArgs": capability_args,
            "result": result,
        }
        path = self.cache_path(conflist["name"], attachment.container_id, attachment.ifname)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(entry, handle)
        os.replace(tmp, path)

    def leftover_nat_rules(self, network: str, container_id: str) -> list[list[str]]:
        """iptables nat rules whose comment names the container (argv after `-A`).

        The bridge plugin (1.1) removes its ipMasq rule only when it finds the container's
        interface, so a DEL after the network namespace vanished leaves the rule and its chain
        behind; the comment the plugins put on their rules finds them again.
        """
        iptables = find_program("iptables")
        if iptables is None:
            return []
        rc, stdout, _stderr = self._run([iptables, "-w", "-t", "nat", "-S"])
        if rc != 0:
            return []
        return nat_rules_of(stdout, network, container_id)

    def remove_nat_rules(self, rules: list[list[str]]) -> None:
        iptables = find_program("iptables") or "iptables"
        chains = []
        for rule in rules:
            target = rule[rule.index("-j") + 1] if "-j" in rule[:-1] else ""
            if target.startswith("CNI-") and target not in SHARED_CHAINS and target not in chains:
                chains.append(target)
            self._iptables(iptables, ["-D", *rule])
        for chain in chains:
            self._iptables(iptables, ["-F", chain])
            self._iptables(iptables, ["-X", chain])

    def _iptables(self, iptables: str, args: list[str]) -> None:
        rc, stdout, stderr = self._run([iptables, "-w", "-t", "nat", *args])
        if rc != 0:
            raise CniError(
                "iptables {} failed: {}".format(" ".join(args[:2]), stderr.strip()), stdout, stderr
            )

    def ipam_allocations(self, network: str, container_id: str) -> list[str]:
        """Addresses host-local still holds for the container (its files name the container id)."""
        directory = os.path.join(self.cache_dir, "networks", network)
        found = []
        try:
            names = os.listdir(directory)
        except OSError:
            return found
        for name in names:
            try:
                with open(os.path.join(directory, name)) as handle:
                    owner = handle.read().split()
            except OSError:
                continue
            if owner and owner[0] == container_id:
                found.append(name)
        return sorted(found)


def container_address(result: dict | None, ifname: str = DEFAULT_IFNAME) -> str:
    """The first IPv4 address of the container's interface in a CNI result, without prefix length."""
    if not result:
        return ""
    interfaces = result.get("interfaces") or []
    for ip in result.get("ips") or []:
        index = ip.get("interface")
        if isinstance(index, int) and 0 <= index < len(interfaces):
            interface = interfaces[index]
            if interface.get("name") != ifname or not interface.get("sandbox"):
                continue
        address = ip.get("address", "").split("/")[0]
        if address and ":" not in address:
            return address
    return ""


def nat_rules_of(listing: str, network: str, container_id: str) -> list[list[str]]:
    """From `iptables -t nat -S` output, the rules whose comment names the container (argv after -A)."""
    marker = f'name: "{network}" id: "{container_id}"'
    rules = []
    for line in listing.splitlines():
        if not line.startswith("-A ") or container_id not in line:
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        comments = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--comment"]
        if any(marker in comment for comment in comments):
            rules.append(words[1:])
    return rules
