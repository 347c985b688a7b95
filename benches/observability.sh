#!/usr/bin/env bash
# Measures what rate limiting, metrics and request logging cost:
#   1. requests per second on 64 connections for an authenticated cheap route and for the health
#      route, with the limiter on and off in this build, and (when BASELINE_BIN names a build
#      without them) in the baseline;
#   2. size and time of a /metrics scrape with 1,000 endpoints that all saw traffic.
#
# Usage: benches/observability.sh [BIN]      (default target/release/conflagent)
# Env:   BASELINE_BIN  a conflagent binary to compare with (e.g. built from the commit before
#                      observability); DURATION  seconds per wrk run (default 10);
#                      THREADS  wrk threads (default 2).
# Needs: wrk, curl, python3. Logs go to /dev/null at the default level (info), as in production
# with a log shipper; the log formatting is part of what is measured.
set -euo pipefail

BIN=${1:-target/release/conflagent}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
SECRET=bench-secret-0123456789abcdef0123
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

endpoint_file() { # per_minute burst
    printf 'base_url=http://127.0.0.1:9\nspace_key=DOC\nroot_page_id=1000\n'
    printf 'gpt_shared_secret=%s\napi_token=upstream-token\n' "$SECRET"
    printf 'rate_limit_per_minute=%s\nrate_limit_burst=%s\n' "$1" "$2"
}

start() { # binary config_dir
    PUBLIC=$(free_port)
    PRIVATE=$(free_port)
    "$1" --config-dir "$2" --listen "127.0.0.1:$PUBLIC" --metrics-listen "127.0.0.1:$PRIVATE" \
        >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$PUBLIC/health" >/dev/null && return 0
        sleep 0.1
    done
    echo "gateway did not start" >&2
    exit 1
}

stop() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}

rps() { # path -> requests/s
    wrk -t"$THREADS" -c64 -d"${DURATION}s" -H "Authorization: Bearer $SECRET" \
        "http://127.0.0.1:$PUBLIC$1" | awk '/^Requests\/sec/ {print $2}'
}

# The authenticated route: `depth` is out of range, so it fails right after authentication and the
# quota, before any call to Confluence.
AUTH_ROUTE=/pages/tree?depth=99

mkdir "$WORK/rps"
# The highest quota a file may set (1,000,000 a minute, bursts of 100,000): the limiter runs on every
# request and, below about 25,000 requests/s over a 10 s run, never refuses. The scrape after
# each build's runs says whether it did.
endpoint_file 1000000 100000 >"$WORK/rps/conflagent.limited.properties"
endpoint_file 0 0 >"$WORK/rps/conflagent.unlimited.properties"

refused() {
    curl -fs "http://127.0.0.1:$PRIVATE/metrics" |
        awk '/^conflagent_rate_limited_total/ {sum += $NF} END {print sum + 0}'
}

echo "requests/s, 64 connections, ${DURATION}s per run, $THREADS wrk threads, $(nproc) cores"
printf '%-58s %10s\n' "build and route" "requests/s"
start "$BIN" "$WORK/rps"
rps /endpoint/unlimited/health >/dev/null # warm-up
printf '%-58s %10s\n' "this build, auth route, limiter on" "$(rps "/endpoint/limited$AUTH_ROUTE")"
printf '%-58s %10s\n' "this build, auth route, limiter off" "$(rps "/endpoint/unlimited$AUTH_ROUTE")"
printf '%-58s %10s\n' "this build, health, limiter off" "$(rps /endpoint/unlimited/health)"
echo "  (requests refused by a limiter during these runs: $(refused))"
stop
# The same without the request log line (RUST_LOG=warn): what the metrics and the limiter cost alone.
RUST_LOG=warn start "$BIN" "$WORK/rps"
printf '%-58s %10s\n' "this build, RUST_LOG=warn, auth route, limiter on" \
    "$(rps "/endpoint/limited$AUTH_ROUTE")"
printf '%-58s %10s\n' "this build, RUST_LOG=warn, health, limiter off" "$(rps /endpoint/unlimited/health)"
stop
if [ -n "${BASELINE_BIN:-}" ]; then
    start "$BASELINE_BIN" "$WORK/rps"
    rps /endpoint/unlimited/health >/dev/null
    printf '%-58s %10s\n' "baseline (no limiter, metrics or request log), auth route" \
        "$(rps "/endpoint/limited$AUTH_ROUTE")"
    printf '%-58s %10s\n' "baseline, health" "$(rps /endpoint/unlimited/health)"
    stop
fi

# 1,000 endpoints, each sent health and authenticated requests by wrk cycling through them.
mkdir "$WORK/many"
for index in $(seq 0 999); do
    endpoint_file 1000000 100000 >"$WORK/many/conflagent.team-$index.properties"
done
cat >"$WORK/cycle.lua" <<EOF
local counter = 0
request = function()
    counter = counter + 1
    local team = "team-" .. (counter % 1000)
    local route = (math.floor(counter / 1000) % 2 == 0) and "/health" or "$AUTH_ROUTE"
    return wrk.format("GET", "/endpoint/" .. team .. route,
        { ["Authorization"] = "Bearer $SECRET" })
end
EOF
start "$BIN" "$WORK/many"
wrk -t"$THREADS" -c64 -d5s -s "$WORK/cycle.lua" "http://127.0.0.1:$PUBLIC" >/dev/null
scrape() {
    curl -fs -o "$WORK/scrape.txt" -w '%{size_download} %{time_total}\n' \
        "http://127.0.0.1:$PRIVATE/metrics"
}
scrape >/dev/null
for _ in 1 2 3 4 5; do scrape; done | sort -k2 -n | sed -n 3p | {
    read -r bytes seconds
    series=$(grep -vc '^#' "$WORK/scrape.txt")
    endpoints=$({ grep -o 'endpoint="team-[0-9]*"' "$WORK/scrape.txt" || true; } | sort -u | wc -l)
    printf '/metrics with %s endpoints that saw traffic: %s bytes, %s series, median of 5 scrapes %s ms\n' \
        "$endpoints" "$bytes" "$series" "$(awk -v s="$seconds" 'BEGIN {print s * 1000}')"
}
stop
