#!/usr/bin/env bash
# `make demo`: the seed's walkthrough ("Deploy your first app") over Grove's REST API, on the local
# test bed: two worker hosts, `grove api` on port 10000, the clientsrvr application (nginx + curl)
# registered and deployed over HTTP, nginx's page fetched, and curl run inside the client.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
DESCRIPTOR=examples/clientsrvr.json
DATA_DIR=${GROVE_DEMO_DIR:-/var/lib/grove/demo}
PORT=10000
API=http://127.0.0.1:$PORT
export GROVE_API_URL=$API

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# Show a command's output only when it fails: the playbooks are long, the demo should stay readable.
quietly() {
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "demo: $* failed (log: $log)" >&2
    exit 1
  fi
}

mkdir -p "$DATA_DIR"
if [ -f "$DATA_DIR/api.pid" ] && kill -0 "$(cat "$DATA_DIR/api.pid")" 2>/dev/null; then
  step "Stopping the API of an earlier demo (pid $(cat "$DATA_DIR/api.pid"))"
  kill "$(cat "$DATA_DIR/api.pid")"
  while kill -0 "$(cat "$DATA_DIR/api.pid")" 2>/dev/null; do sleep 0.2; done
fi
# A fresh store; instances an earlier demo left on the test bed are found there and kept.
rm -f "$DATA_DIR"/grove.db* "$DATA_DIR/api.pid"

step "Bringing up the local edge test bed (1 cluster, 2 worker hosts)"
# Captured, then printed: `tee /dev/stderr` interleaved both streams when they share one file.
up=$(grove testbed up --clusters 1 --workers 2)
printf '%s\n' "$up"
inv=$(tail -n 1 <<<"$up")

step "Preparing the workers: containerd, runc, CNI plugins (playbooks/workers.yml)"
quietly "$DATA_DIR/workers.log" ansible-playbook -i "$inv" playbooks/workers.yml
grep -A3 '^PLAY RECAP' "$DATA_DIR/workers.log"

step "Starting the root orchestrator: grove api on 0.0.0.0:$PORT (log: $DATA_DIR/api.log)"
# Its own session, so it outlives `make demo` and stays for the Swagger UI until it is stopped.
setsid grove api --inventory "$inv" --data-dir "$DATA_DIR" --port "$PORT" >"$DATA_DIR/api.log" 2>&1 </dev/null &
echo $! >"$DATA_DIR/api.pid"
deadline=$((SECONDS + 60))
until curl --noproxy '*' -fs -o /dev/null "$API/api/docs"; do
  if ! kill -0 "$(cat "$DATA_DIR/api.pid")" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    cat "$DATA_DIR/api.log" >&2
    echo "demo: grove api did not come up" >&2
    exit 1
  fi
  sleep 0.3
done
echo "Swagger UI: $API/api/docs (log in as Admin/Admin)"

step "The seed over HTTP: log in, POST /api/application, POST /api/service/{id}/instance per service"
if ! seed=$(scripts/api-seed.sh "$DESCRIPTOR"); then
  printf '%s\n' "$seed"
  echo "demo: the seed's walkthrough did not end with every instance RUNNING (log: $DATA_DIR/api.log)" >&2
  exit 1
fi
printf '%s\n' "$seed"
app_id=$(tail -n 1 <<<"$seed")
url=$(sed -n 's|^clientsrvr\.test\.nginx\.test instance 0: RUNNING .* \(http://[^ ]*\)$|\1|p' <<<"$seed")
curl_worker=$(sed -n 's|^clientsrvr\.test\.curl\.test instance 0: RUNNING on [^/]*/\([^ ]*\) .*|\1|p' <<<"$seed")
rr_ip=$(sed -n 's|^clientsrvr\.test\.nginx\.test: service address \(.*\)$|\1|p' <<<"$seed")
if [ -z "$url" ] || [ -z "$curl_worker" ] || [ -z "$rr_ip" ]; then
  echo "demo: the seed's services are not both RUNNING" >&2
  exit 1
fi
echo "Both services show RUNNING (the seed's word is ACTIVE; Oakestra and its clients say RUNNING)."

step "nginx answers at $url"
deadline=$((SECONDS + 30))
# --noproxy: the test bed is on this machine; a proxy from the environment must not carry it.
until page=$(curl --noproxy '*' -fsS --max-time 2 "$url"); do
  [ "$SECONDS" -lt "$deadline" ] || { echo "nginx did not answer on $url" >&2; exit 1; }
  sleep 0.5
done
grep -E '<title>|<h1>' <<<"$page"

step "Inside the curl client on $curl_worker: curl $url"
echo "(as the seed does: on $curl_worker,"
echo "   ctr -n grove task exec --exec-id term1 clientsrvr.test.curl.test.instance.0 /bin/sh )"
ansible -i "$inv" "$curl_worker" -m ansible.builtin.command \
  -a "ctr -n grove task exec --exec-id demo clientsrvr.test.curl.test.instance.0 curl -fsS $url" \
  | grep -E '<title>|<h1>|CHANGED|FAILED'

step "Inside the curl client: nginx at its service address $rr_ip and by its name"
echo "(the seed's last step; the address is balanced over every nginx instance, on any worker)"
for target in "http://$rr_ip/" http://nginx.test.clientsrvr.test/; do
  echo "curl $target"
  ansible -i "$inv" "$curl_worker" -m ansible.builtin.command \
    -a "ctr -n grove task exec --exec-id demo clientsrvr.test.curl.test.instance.0 curl -fsS --max-time 5 $target" \
    | grep -E '<title>|FAILED'
done

step "Done. To stop everything (from $PWD):"
cat <<EOT
  # remove the application with its services and instances:
  token=\$(curl -s -X POST -H 'Content-Type: application/json' -d '{"username":"Admin","password":"Admin"}' $API/api/auth/login | jq -r .token)
  curl -X DELETE -H "Authorization: Bearer \$token" $API/api/application/$app_id
  # stop grove api, then remove the test bed:
  kill $(cat "$DATA_DIR/api.pid")
  .venv/bin/grove testbed down
EOT
