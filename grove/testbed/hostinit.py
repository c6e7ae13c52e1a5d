"""PID 1 of a test bed worker host.

Started by `grove testbed up` inside the host's own network, mount, UTS and PID namespaces. It
gives the host its private view of the container runtime's directories, runs sshd, and reaps
every orphan (containerd shims re-parent to it), because the machine's real PID 1 does not.
When it exits the kernel kills everything left in the host's PID namespace, which makes
`grove testbed down` a clean power-off. Standard library only: it runs on /usr/bin/python3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def _mount_private_paths(binds: list[list[str]]) -> None:
    for source, target in binds:
        os.makedirs(source, exist_ok=True)
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "--bind", source, target], check=True)
    # Network namespace files of instances stay inside this host.
    os.makedirs("/run/netns", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "grove-netns", "/run/netns"], check=True)
    os.makedirs("/run/sshd", exist_ok=True)


def main() -> int:
    spec = json.loads(sys.argv[1])
    subprocess.run(["hostname", spec["hostname"]], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    _mount_private_paths(spec["binds"])
    with open(spec["log"], "ab") as log:
        sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", spec["sshd_config"]],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )

    def _stop(signum: int, _frame: object) -> None:
        sshd.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    while True:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            return 0
        if pid == sshd.pid:
            return 1


if __name__ == "__main__":
    sys.exit(main())
