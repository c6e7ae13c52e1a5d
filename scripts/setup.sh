#!/usr/bin/env bash
# Installs everything Grove needs on a Debian 12 machine: the distribution packages and a .venv
# with the project. Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  containerd runc containernetworking-plugins iptables nftables iproute2
  openssh-server openssh-client
  umoci skopeo busybox-static docker-registry nginx-light curl
  procps util-linux psmisc ca-certificates jq git make python3 python3-venv
  shellcheck wrk
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs Debian packages and the test bed needs root)" >&2
  exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # Packages such as openssh-server and docker-registry would start daemons on the machine's own
  # addresses; the test bed runs its own copies inside namespaces instead.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
  fi
  trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.grove-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/grove)"
