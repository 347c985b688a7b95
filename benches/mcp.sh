#!/usr/bin/env bash
# Requests per second, in one run against the demo (gateway + in-process simulator, no injected
# latency): MCP tools/list, an MCP tools/call of readPageByTitle, and the same read over REST
# (GET /pages/{title}). Needs wrk (Debian: apt-get install -y wrk).
# Usage: bash benches/mcp.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-10}"
connections="${2:-32}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

cargo build --release --quiet --bin conflagent
work="$(mktemp -d)"
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

RUST_LOG=warn target/release/conflagent demo --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --rate-limit-per-minute 0 >"$work/demo.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q '^Secret:' "$work/demo.log" && break; sleep 0.1; done
endpoint="$(awk '/^Endpoint:/ {print $2}' "$work/demo.log")"
secret="$(awk '/^Secret:/ {print $2}' "$work/demo.log")"
[[ -n "$endpoint" && -n "$secret" ]] || { cat "$work/demo.log"; echo "demo did not start"; exit 1; }

post_script() {
    cat >"$work/$1.lua" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer $secret"
LUA
}
post_script list '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
post_script read '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"readPageByTitle","arguments":{"title":"Release Process"}}}'

# Each request must succeed, or the rate means nothing.
curl -fsS -H "Authorization: Bearer $secret" "$endpoint/pages/Release%20Process" | grep -q '"success":true'
curl -fsS -H "Authorization: Bearer $secret" -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"readPageByTitle","arguments":{"title":"Release Process"}}}' \
    "$endpoint/mcp" | grep -q '"isError":false'

rate() { wrk -t2 -c"$connections" -d"${duration}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
echo "REST GET /pages/Release%20Process:     $(rate -H "Authorization: Bearer $secret" "$endpoint/pages/Release%20Process") req/s"
echo "MCP tools/list:                        $(rate -s "$work/list.lua" "$endpoint/mcp") req/s"
echo "MCP tools/call readPageByTitle:        $(rate -s "$work/read.lua" "$endpoint/mcp") req/s"
echo "(${connections} connections, ${duration} s each, wrk on the same machine)"
