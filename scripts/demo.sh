#!/usr/bin/env bash
# The seed's walkthrough on the local test bed: two worker hosts, the clientsrvr application
# (nginx + curl) deployed from its descriptor, nginx's page fetched, curl run inside the client.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
DESCRIPTOR=examples/clientsrvr.json

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Bringing up the local edge test bed (1 cluster, 2 worker hosts)"
inv=$(grove testbed up --clusters 1 --workers 2 | tee /dev/stderr | tail -n 1)

step "Preparing the workers: containerd, runc, CNI plugins (role containerd)"
ansible-playbook -i "$inv" playbooks/workers.yml

step "Deploying $DESCRIPTOR"
summary=$(ansible-playbook -i "$inv" playbooks/deploy.yml -e "descriptor=$DESCRIPTOR" | tee /dev/stderr)

# The playbook ends with one line per instance: "<instance> cluster=<c> worker=<w> status=<s> ...".
worker_of() { sed -n "s/.*\"$1\.instance\.0 cluster=[^ ]* worker=\([^ ]*\) .*/\1/p" <<<"$summary" | head -n 1; }
address_of() { ansible-inventory -i "$inv" --host "$1" | jq -r .ansible_host; }
nginx_worker=$(worker_of clientsrvr.test.nginx.test)
curl_worker=$(worker_of clientsrvr.test.curl.test)
nginx_address=$(address_of "$nginx_worker")
url="http://$nginx_address:6080"

step "nginx runs on $nginx_worker: fetching $url"
deadline=$((SECONDS + 30))
# --noproxy: the test bed is on this machine; a proxy from the environment must not carry it.
until page=$(curl --noproxy '*' -fsS --max-time 2 "$url"); do
  [ "$SECONDS" -lt "$deadline" ] || { echo "nginx did not answer on $url" >&2; exit 1; }
  sleep 0.5
done
grep -E '<title>|<h1>' <<<"$page"

step "Inside the curl client on $curl_worker: curl $url"
echo "(as the seed does: ssh to $curl_worker, then"
echo "   ctr -n grove task exec --exec-id term1 clientsrvr.test.curl.test.instance.0 /bin/sh )"
ansible -i "$inv" "$curl_worker" -m ansible.builtin.command \
  -a "ctr -n grove task exec --exec-id demo clientsrvr.test.curl.test.instance.0 curl -fsS $url" \
  | grep -E '<title>|<h1>|CHANGED|FAILED'

step "Done. To tear down (from $PWD):"
cat <<EOT
  .venv/bin/ansible-playbook -i $inv playbooks/undeploy.yml -e descriptor=$DESCRIPTOR   # remove the app
  .venv/bin/grove testbed down                                                  # remove the test bed
EOT
