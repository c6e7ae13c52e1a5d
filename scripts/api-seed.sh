#!/usr/bin/env bash
# The seed's walkthrough over Grove's REST API, with curl: log in as Admin, register a descriptor's
# application, request one instance of each of its services and wait until all of them run.
#
#   scripts/api-seed.sh [DESCRIPTOR]     (default: examples/clientsrvr.json)
#
# GROVE_API_URL (default http://127.0.0.1:10000), GROVE_ADMIN_PASSWORD (default Admin) and
# GROVE_SEED_TIMEOUT (seconds, default 300) change the defaults. Each instance is printed with its
# worker and, when it maps a host port, its URL. The last line is the application's id:
#   curl -X DELETE -H "Authorization: Bearer $TOKEN" $GROVE_API_URL/api/application/<id>
# removes the application with its services and instances.
set -euo pipefail

api=${GROVE_API_URL:-http://127.0.0.1:10000}
descriptor=${1:-"$(dirname "$0")/../examples/clientsrvr.json"}
timeout=${GROVE_SEED_TIMEOUT:-300}
in_progress='["REQUESTED", "CLUSTER_SCHEDULED", "NODE_SCHEDULED", "CREATING", "CREATED"]'

# The API is on this machine or the operator's network: never send its traffic to a proxy.
http() {
  curl --noproxy '*' --silent --show-error --fail-with-body -H 'Content-Type: application/json' "$@"
}

token=$(jq -n --arg password "${GROVE_ADMIN_PASSWORD:-Admin}" '{username: "Admin", password: $password}' |
  http -X POST --data-binary @- "$api/api/auth/login" | jq -r .token)
call() {
  local method=$1 path=$2
  shift 2
  http -X "$method" -H "Authorization: Bearer $token" "$@" "$api$path"
}

name=$(jq -r '.applications[0].application_name' "$descriptor")
namespace=$(jq -r '.applications[0].application_namespace' "$descriptor")
apps=$(call POST /api/application --data-binary @"$descriptor")
app=$(jq -c --arg n "$name" --arg ns "$namespace" \
  'map(select(.application_name == $n and .application_namespace == $ns))[0]' <<<"$apps")
app_id=$(jq -r .applicationID <<<"$app")
echo "==> registered $name.$namespace: application $app_id"

for service in $(jq -r '.microservices[]' <<<"$app"); do
  number=$(call POST "/api/service/$service/instance" | jq -r .instance_number)
  echo "==> requested instance $number of service $service"
done

deadline=$((SECONDS + timeout))
while :; do
  services=$(call GET "/api/services/$app_id")
  waiting=$(jq --argjson busy "$in_progress" '[.[].instance_list[] | select(.status as $s | $busy | index($s))] | length' <<<"$services")
  if [ "$waiting" = 0 ]; then
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "api-seed: the instances did not settle within ${timeout}s" >&2
    break
  fi
  sleep 1
done

# An instance runs before its job has routed the service addresses and written the names: wait
# for the jobs too, so that everything printed below also answers.
for job in $(jq -r '[.[].instance_list[].job_id | select(. != "")] | unique | .[]' <<<"$services"); do
  while :; do
    state=$(call GET "/api/jobs/$job" | jq -r .state)
    if [ "$state" != queued ] && [ "$state" != running ]; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "api-seed: job $job is still $state after ${timeout}s" >&2
      break
    fi
    sleep 1
  done
done

jq -r '.[] | "\(.job_name): service address \(.RR_ip)"' <<<"$services"
jq -r '.[] | .job_name as $name | .instance_list[] |
  "\($name) instance \(.instance_number): \(.status) on \(.cluster_id)/\(.worker_id) (\(.status_detail))"
  + (if .host_port > 0 and .status == "RUNNING" then " http://\(.host_ip):\(.host_port)/" else "" end)' <<<"$services"
failed=$(jq '[.[] | select(.status != "RUNNING")] | length' <<<"$services")
echo "$app_id"
[ "$failed" = 0 ]
