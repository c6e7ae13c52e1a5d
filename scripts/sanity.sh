#!/usr/bin/env bash
# Run `ansible-test sanity` on the grove.edge collection with no ignore entries, without the
# ci-files.testing.ansible.com download ansible-test normally needs (see docs/sanity.md).
#
# Environment:
#   GROVE_VENV               virtualenv with ansible-core (default: <repo>/.venv)
#   SANITY_COLLECTION_DIR    collection to test (default: <repo>/collections/ansible_collections/grove/edge)
#   SANITY_TARGET_PYTHONS    versions for the per-version tests compile and import
#                            (default: every version this ansible-test supports for modules)
#   SANITY_REQUIRE_TARGETS=1 fail instead of warn when a target Python is not installed
# Extra arguments are passed to ansible-test (e.g. --test validate-modules).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${GROVE_VENV:-$repo_root/.venv}
collection_dir=${SANITY_COLLECTION_DIR:-$repo_root/collections/ansible_collections/grove/edge}
target_versions=${SANITY_TARGET_PYTHONS:-}

die() { echo "sanity.sh: $*" >&2; exit 1; }

[[ -x $venv/bin/ansible-test ]] || die "no ansible-test in $venv (install the project: pip install -e '.[test]')"
case $collection_dir in
  */ansible_collections/*/*) ;;
  *) die "$collection_dir is not inside an ansible_collections/<namespace>/<name> tree" ;;
esac

# The project's rule is zero ignore entries; ansible-test itself would silently honour them.
shopt -s nullglob
for ignore_file in "$collection_dir"/tests/sanity/ignore-*.txt; do
  if grep -qvE '^[[:space:]]*(#|$)' "$ignore_file"; then
    die "$ignore_file has entries; fix the code instead of ignoring the finding"
  fi
done
shopt -u nullglob

# ansible-test reports these two as "No tests applicable" when their tool is missing, which would
# pass files nobody checked.
require_tool_for() {
  local tool=$1 hint=$2; shift 2
  local found
  found=$(cd "$collection_dir" && find . -path ./tests/output -prune -o -type f \( "$@" \) -print -quit)
  if [[ -n $found ]] && ! command -v "$tool" >/dev/null; then
    die "$found needs $tool for its sanity test ($hint)"
  fi
}
require_tool_for shellcheck "apt-get install shellcheck" -name '*.sh'
require_tool_for pwsh "PowerShell is not packaged for Debian here" -name '*.ps1' -o -name '*.psm1' -o -name '*.psd1'

# Shims (pyenv) exec a version chosen by environment that ansible-test strips, so only
# interpreters that run on their own count.
find_python() {
  local version=$1 candidate pyenv_root=${PYENV_ROOT:-}
  if [[ -z $pyenv_root ]] && command -v pyenv >/dev/null; then
    pyenv_root=$(cd "$(dirname "$(readlink -f "$(command -v pyenv)")")/.." && pwd)
  fi
  pyenv_root=${pyenv_root:-$HOME/.pyenv}
  local candidates=()
  mapfile -t candidates < <(printf '%s\n' "$pyenv_root"/versions/"$version".*/bin/python"$version" | sort -V -r)
  for candidate in "${candidates[@]}" "/usr/bin/python$version" "/usr/local/bin/python$version"; do
    if [[ -x $candidate ]] && "$candidate" -c 'import venv' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

controller_python=$venv/bin/python
if [[ -z $target_versions ]]; then
  target_versions=$("$controller_python" -c '
from ansible_test._util.target.common.constants import CONTROLLER_PYTHON_VERSIONS, REMOTE_ONLY_PYTHON_VERSIONS
print(*REMOTE_ONLY_PYTHON_VERSIONS, *CONTROLLER_PYTHON_VERSIONS)')
fi
# The controller is the venv's Python (3.11 for ansible-core 2.19 here); ansible-test builds its
# sanity virtualenvs from that venv's base interpreter.
controller_version=$("$controller_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/grove/ansible-test
# ansible-test makes a target's virtualenv with the first pythonX.Y on PATH, whatever interpreter
# --target-python names; this directory puts the real interpreters ahead of any shims. It must
# outlive the run: the cached sanity virtualenvs point their python at these links.
python_links=$cache_dir/pythons
mkdir -p "$python_links"

target_args=()
missing=()
for version in $target_versions; do
  if [[ $version == "$controller_version" ]]; then
    target_args+=(--target-python "$version@$controller_python")
    continue
  fi
  if ! interpreter=$(find_python "$version"); then
    rm -f "$python_links/python$version"
    missing+=("$version")
    continue
  fi
  ln -sfn "$interpreter" "$python_links/python$version"
  target_args+=(--target-python "$version@$python_links/python$version")
done
export PATH=$python_links:$PATH
if ((${#missing[@]})); then
  message="no Python ${missing[*]} here: compile and import sanity tests do not run for it"
  [[ ${SANITY_REQUIRE_TARGETS:-0} == 1 ]] && die "$message"
  echo "sanity.sh: WARNING: $message" >&2
fi

stand_in=$("$controller_python" "$repo_root/scripts/ansible_test_pip_bootstrap.py" --cache-dir "$cache_dir")
echo "sanity.sh: pip bootstrap for sanity virtualenvs: $stand_in" >&2

cd "$collection_dir"
exec "$venv/bin/ansible-test" sanity \
  --requirements \
  --controller "origin:python=$controller_version@$controller_python" \
  "${target_args[@]}" \
  "$@"
