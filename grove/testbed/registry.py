"""The test bed's OCI registry (Debian's docker-registry) on the test bridge."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from grove.testbed import layout
from grove.testbed.commands import wait_until

CONFIG_NAME = "registry.yml"


def config_path() -> Path:
    return layout.state_dir() / CONFIG_NAME


# The registry is on the test bridge: never ask a proxy from the environment to reach it.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(address: str) -> bool:
    try:
        with _DIRECT.open(f"http://{address}/v2/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start() -> int:
    """Start the registry on the bridge address; returns its pid."""
    storage = layout.cache_dir() / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    config = config_path()
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {layout.registry_address()}\n"
    )
    log = open(layout.state_dir() / "registry.log", "ab")  # handed to the child
    proc = subprocess.Popen(
        ["/usr/bin/docker-registry", "serve", str(config)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    wait_until(
        lambda: proc.poll() is not None or _answers(layout.registry_address()),
        timeout=30,
        what=f"the registry on {layout.registry_address()}",
    )
    if proc.poll() is not None:
        raise RuntimeError(
            f"docker-registry exited with {proc.returncode}; see {layout.state_dir()}/registry.log"
        )
    return proc.pid


def answers() -> bool:
    return _answers(layout.registry_address())
