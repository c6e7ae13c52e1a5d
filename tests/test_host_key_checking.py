"""SSH host key checking stays on: no configuration in the repository weakens real inventories."""

from __future__ import annotations

import json
import os
import re
import subprocess

from testbed_support import BIN, REPO

# Options that make SSH (or Ansible) accept any host key, in ssh_config, ansible.cfg and YAML spelling.
WEAKENING = re.compile(
    r"StrictHostKeyChecking\s*=?\s*(no|off|accept-new)\b"
    r"|UserKnownHostsFile\s*=?\s*/dev/null"
    r"|host_key_checking\s*[:=]\s*[\"']?(false|no|off|0)\b",
    re.IGNORECASE,
)
SKIPPED_DIRS = {".git", ".venv", ".pytest_cache", ".ruff_cache", ".hypothesis", ".ansible", "__pycache__"}


def _connection_options(plugin: str) -> dict[str, object]:
    """The options Ansible resolves for a connection plugin from the repository's ansible.cfg alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{BIN}:{env['PATH']}")
    proc = subprocess.run(
        [str(BIN / "ansible-config"), "dump", "--format", "json", "-t", "connection"],
        capture_output=True, text=True, env=env, cwd=REPO, check=True,
    )  # fmt: skip
    for section in json.loads(proc.stdout):
        if plugin in section:
            return {option["name"]: option["value"] for option in section[plugin]}
    raise AssertionError(f"no {plugin} connection plugin in {proc.stdout[:500]}")


def test_ansible_cfg_leaves_host_key_checking_on():
    ssh = _connection_options("ssh")
    assert ssh["host_key_checking"] is True
    for name in ("ssh_args", "ssh_common_args", "ssh_extra_args"):
        assert not WEAKENING.search(ssh[name] or ""), f"{name}: {ssh[name]}"
    # The keep-alives and connection sharing stay.
    assert "ServerAliveInterval=5" in ssh["ssh_args"] and "ControlPersist=60s" in ssh["ssh_args"]
    assert ssh["pipelining"] is True
    assert _connection_options("paramiko_ssh")["host_key_checking"] is True


def test_no_file_in_the_repository_turns_host_key_checking_off():
    weakened = []
    for directory, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = os.path.join(directory, name)
            if path == __file__:
                continue
            try:
                text = open(path, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            weakened += [f"{path}: {m.group(0)}" for m in WEAKENING.finditer(text)]
    assert weakened == []
