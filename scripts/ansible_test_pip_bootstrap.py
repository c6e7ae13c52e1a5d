"""Prepare ansible-test's pip bootstrap so `ansible-test sanity --requirements` works without internet.

ansible-test creates one virtualenv per sanity test and bootstraps pip in it with a get-pip.py that it
downloads from ci-files.testing.ansible.com (not reachable here) unless the file is already cached at
~/.ansible/test/cache/get_pip_<version>.py. It then runs pip with an environment reduced to HOME, PATH and
LC_ALL (ansible_test._internal.util.common_environment), so PIP_CERT, PIP_INDEX_URL, PIP_FIND_LINKS,
SSL_CERT_FILE, REQUESTS_CA_BUNDLE and HTTPS_PROXY never reach it. Where the package index sits behind a
TLS-intercepting egress proxy whose CA is only configured through such variables, the pip inside those
virtualenvs fails certificate verification although the same pip works when run by hand.

This writes a stand-in get-pip that
- installs pip from a wheel fetched beforehand by the caller's pip (which has the full environment), so
  neither the download host nor ensurepip is needed, and
- writes the caller's PIP_* settings (and CA bundle / proxy) into the new virtualenv's own pip.conf, the one
  configuration source pip reads that ansible-test's environment filtering cannot remove.

Prints the path of the stand-in. Idempotent: files are only rewritten when their content changes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

MARKER = "# grove: ansible-test get-pip stand-in"

STAND_IN_TEMPLATE = '''{marker} (written by grove scripts/sanity.sh, which rewrites it if missing)
"""Offline stand-in for get-pip.py, run by ansible-test inside a fresh sanity virtualenv."""
import os
import subprocess
import sys

PIP_WHEEL = {wheel!r}
PIP_VERSION = {version!r}
PIP_CONF = {pip_conf!r}


def main():
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    if sys.prefix != sys.base_prefix and PIP_CONF:
        # ansible-test strips PIP_* and certificate variables from pip's environment; a virtualenv's own
        # pip.conf is read regardless, so the settings travel with the virtualenv instead.
        with open(os.path.join(sys.prefix, "pip.conf"), "w") as handle:
            handle.write(PIP_CONF)
    requested = [arg for arg in args if not arg.startswith("-")]
    offline = all(arg == "pip==" + PIP_VERSION for arg in requested)
    command = [sys.executable, os.path.join(PIP_WHEEL, "pip"), "install", "--upgrade"]
    if offline:
        command += ["--no-index", "--find-links", os.path.dirname(PIP_WHEEL)]
    sys.exit(subprocess.call(command + args))


if __name__ == "__main__":
    main()
'''

# Settings pip reads from the environment but ansible-test removes before running it.
CA_BUNDLE_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PROXY_VARIABLES = ("PIP_PROXY", "HTTPS_PROXY", "https_proxy")
NOT_REPLAYED = {"PIP_CONFIG_FILE", "PIP_CERT", "PIP_PROXY"}


def ansible_test_pip_version() -> str:
    import ansible_test  # noqa: PLC0415  (only needed to locate the installed ansible-test)

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    match = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source.read_text())
    if not match:
        raise SystemExit(f"cannot find the pip version ansible-test bootstraps in {source}")
    return match.group(1)


def fetch_pip_wheel(version: str, wheel_dir: Path) -> Path:
    wheels = sorted(wheel_dir.glob(f"pip-{version}-*.whl"))
    if not wheels:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(wheel_dir),
                f"pip=={version}",
            ],
            check=True,
        )
        wheels = sorted(wheel_dir.glob(f"pip-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download did not leave a pip {version} wheel in {wheel_dir}")
    return wheels[-1]


def first_set(names: tuple[str, ...]) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def virtualenv_pip_conf() -> str:
    settings: dict[str, str] = {}
    for name, value in sorted(os.environ.items()):
        if name.startswith("PIP_") and name not in NOT_REPLAYED and value:
            settings[name[4:].lower().replace("_", "-")] = value
    ca_bundle = first_set(CA_BUNDLE_VARIABLES)
    if ca_bundle:
        settings["cert"] = ca_bundle
    proxy = first_set(PROXY_VARIABLES)
    if proxy:
        settings["proxy"] = proxy
    if not settings:
        return ""
    lines = ["[global]"] + [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_cache = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grove" / "ansible-test"
    )
    parser.add_argument("--cache-dir", type=Path, default=default_cache)
    options = parser.parse_args()

    version = ansible_test_pip_version()
    wheel = fetch_pip_wheel(version, options.cache_dir / "wheels")
    stand_in = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"
    if stand_in.exists() and not stand_in.read_text().startswith(MARKER):
        # A real get-pip.py (saved by hand or downloaded elsewhere) bundles its own pip; leave it in place.
        print(f"keeping existing {stand_in} (not ours)", file=sys.stderr)
    else:
        text = STAND_IN_TEMPLATE.format(
            marker=MARKER, wheel=str(wheel), version=version, pip_conf=virtualenv_pip_conf()
        )
        write_if_changed(stand_in, text)
    print(stand_in)


if __name__ == "__main__":
    main()
