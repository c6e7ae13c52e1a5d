# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CPU architecture names in Go's spelling (the one OCI images use), from whatever a user or
`uname -m` writes. node_info reports workers with it and the scheduler matches requests with it."""

from __future__ import annotations

_ALIASES = {
    "x86_64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "armv8": "arm64",
    "armv8l": "arm",
    "armhf": "arm",
    "i386": "386",
    "i686": "386",
}


def architecture(name: str) -> str:
    """`x86_64` -> `amd64`, `aarch64` -> `arm64`, `armv7l` -> `arm`; other names lower-cased."""
    name = name.strip().lower()
    if name in _ALIASES:
        return _ALIASES[name]
    if name.startswith("armv"):
        return "arm"
    return name
