# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of services inside instances, without a DNS server: one hosts file per instance.

Every instance gets `<hosts_dir>/<instance id>` on its worker, bind-mounted read-only at
/etc/hosts in the container. The file names the services of the instance's own application
with their round-robin addresses, in two forms:

    10.30.1.2   nginx.test.clientsrvr.test nginx

the fully qualified `service.servicens.app.appns` and the bare service name (left out when two
services of the application share it, as nginx.test and nginx.prod would). The file is
rewritten in place, keeping its inode: a bind mount pins the inode, so replacing the file by a
rename would leave the container reading the old one. Stdlib only.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible_collections.grove.edge.plugins.module_utils._service_address import check_fqn

DEFAULT_HOSTS_DIR = "/run/grove/hosts"
LOCALHOST_LINES = ("127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback")
# The file name is the containerd id of the instance (see _descriptor.instance_id).
INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,75}")
RESERVED_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


class ServiceNamesError(ValueError):
    """Input that cannot describe hosts files; the message names the field."""


def application_of(fqn: str) -> str:
    """`app.appns` of `app.appns.svc.svcns`."""
    parts = check_fqn(fqn).split(".")
    return "%s.%s" % (parts[0], parts[1])


def dns_name(fqn: str) -> str:
    """`svc.svcns.app.appns`, the order of DNS names (most specific first)."""
    app, app_ns, service, service_ns = check_fqn(fqn).split(".")
    return "%s.%s.%s.%s" % (service, service_ns, app, app_ns)


def application_entries(services: list) -> dict:
    """app.appns -> [(rr_ip, [names])] from [{service, rr_ip}], addresses in order."""
    by_app: dict = {}
    for index, entry in enumerate(services):
        if not isinstance(entry, dict):
            raise ServiceNamesError("services[%d]: must be an object" % index)
        fqn = check_fqn(entry.get("service"), "services[%d].service" % index)
        rr_ip = entry.get("rr_ip")
        if not rr_ip:
            continue
        try:
            address = ipaddress.IPv4Address(str(rr_ip))
        except ValueError as exc:
            raise ServiceNamesError("services[%d].rr_ip: %r is not an IPv4 address" % (index, rr_ip)) from exc
        by_app.setdefault(application_of(fqn), []).append((address, fqn))
    result = {}
    for app, members in by_app.items():
        shorts: dict = {}
        for _address, fqn in members:
            short = fqn.split(".")[2].lower()
            shorts[short] = shorts.get(short, 0) + 1
        entries = []
        for address, fqn in sorted(members):
            names = [dns_name(fqn)]
            short = fqn.split(".")[2]
            if shorts[short.lower()] == 1 and short.lower() not in RESERVED_NAMES:
                names.append(short)
            entries.append((str(address), names))
        result[app] = entries
    return result


def render_hosts(application: str, entries: list) -> str:
    lines = ["# Managed by Grove: the services of application %s (grove.edge.service_names)." % application]
    lines += list(LOCALHOST_LINES)
    lines += ["%s\t%s" % (address, " ".join(names)) for address, names in entries]
    return "\n".join(lines) + "\n"


def check_instance_id(value: object, what: str = "id") -> str:
    if not isinstance(value, str) or not INSTANCE_ID.fullmatch(value) or value in (".", ".."):
        raise ServiceNamesError(
            "%s: %r is not an instance id (letters, digits, '.', '_', '-'; at most 76)" % (what, value)
        )
    return value


def hosts_path(hosts_dir: str, instance_id: str) -> str:
    return os.path.join(hosts_dir, check_instance_id(instance_id))


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_in_place(path: str, content: str) -> None:
    """Write `content` keeping the file's inode (create it when missing).

    The new text is written over the old one before the file is cut to length, so a reader
    never finds it empty.
    """
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    data = content.encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.fchmod(fd, 0o644)
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
