#!/usr/bin/env bash
# The demo: start `nomad agent -dev`, run examples/jobs/web.nomad.hcl (a web app and its cache
# in two groups that find each other through native service discovery and a template), ask
# the app over HTTP what it got from the cache, show `nomad job status` and
# `nomad service list`, then stop the job and the agent.
#
#   bash examples/run-demo.sh            # HTTP API on 127.0.0.1:4646
#   NOMAD_DEMO_PORT=5646 bash examples/run-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The demo's tasks are python3 programs, and it asks them over HTTP with curl.
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/python3 ] || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}"
fi

port="${NOMAD_DEMO_PORT:-4646}"
cargo build -q -p nomad-bin
nomad=target/debug/nomad
work="$(mktemp -d)"
export NOMAD_ADDR="http://127.0.0.1:${port}"
unset NOMAD_NAMESPACE NOMAD_REGION NOMAD_TOKEN

agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then
    "$nomad" job stop -purge -detach web >/dev/null 2>&1 || true
    sleep 1
    kill "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

printf 'ports {\n  http = %s\n}\n' "$port" > "$work/agent.hcl"
echo "==> starting nomad agent -dev on ${NOMAD_ADDR} (log: $work/agent.log)"
"$nomad" agent -dev -config "$work/agent.hcl" > "$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 100); do
  if "$nomad" node status 2>/dev/null | grep -q ready; then break; fi
  if ! kill -0 "$agent_pid" 2>/dev/null; then cat "$work/agent.log"; exit 1; fi
  sleep 0.1
done
sed -n '1,/agent started/p' "$work/agent.log"

echo
echo "==> nomad job run examples/jobs/web.nomad.hcl"
"$nomad" job run examples/jobs/web.nomad.hcl

echo
echo "==> nomad service list"
"$nomad" service list
echo
echo "==> nomad service info web"
"$nomad" service info web

echo
echo "==> asking each web instance (the address comes from the catalog)"
for addr in $("$nomad" service info web | awk 'NR > 1 { print $2 }'); do
  for _ in $(seq 1 50); do
    answer="$(curl -fsS "http://$addr/" 2>/dev/null || true)"
    case "$answer" in *"says: a value"*) break ;; esac
    sleep 0.2
  done
  echo "curl http://$addr/ -> $answer"
done

echo
echo "==> nomad job status web"
"$nomad" job status web
echo
echo "==> stopping the job and the agent"
