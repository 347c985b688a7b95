#!/usr/bin/env bash
# Requests per second through the gateway next to a minimal hyper hello-world built the same way
# (the ceiling), in the same run, with the gateway's default `info` request log on (written to a
# file). Two gateway routes are measured:
# - GET /endpoint/<name>/health: public, no secret;
# - an authenticated request (`Authorization: Bearer`): routed, title decoded, secret checked in
#   constant time, quota spent, refused by the endpoint's flavor (403): all of the gateway's own work
#   on an authenticated route, without an upstream call.
# The three are measured in turn, round after round, so that a slow spell of the machine hits all
# of them; each round prints its rates, and the last lines give the median of each ratio.
# Needs wrk (Debian: apt-get install -y wrk).
# Usage: bash benches/http.sh [seconds per measurement] [rounds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-10}"
rounds="${2:-3}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

source benches/request_path.sh

target/release/conflagent serve --config-dir "$work/config.d" \
    --listen 127.0.0.1:18080 --metrics-listen 127.0.0.1:19464 --drain-delay 0 >"$work/gateway.log" 2>&1 &
pids+=($!)
HELLO_LISTEN=127.0.0.1:18081 "$hello" &
pids+=($!)
for port in 18080 18081; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

rate() { wrk -t2 -c64 -d"${duration}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
ratios=()
for round in $(seq "$rounds"); do
    ceiling="$(rate http://127.0.0.1:18081/health)"
    health="$(rate http://127.0.0.1:18080/endpoint/bench/health)"
    authed="$(rate -H "Authorization: Bearer $secret" http://127.0.0.1:18080/endpoint/bench/pages/Home)"
    echo "round $round: hello-world ceiling $ceiling req/s; GET /endpoint/bench/health $health req/s; authenticated GET (403 by flavor) $authed req/s"
    ratios+=("$ceiling $health $authed")
done
printf '%s\n' "${ratios[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin if line.strip()]
for name, column in (("GET /endpoint/bench/health", 1), ("authenticated GET (403 by flavor)", 2)):
    ratios = [100 * row[column] / row[0] for row in rows]
    shown = " / ".join(f"{ratio:.0f}" for ratio in ratios)
    print(f"{name}: {statistics.median(ratios):.0f} % of the ceiling (median; rounds: {shown} %)")
'
echo "request log lines written: $(wc -l <"$work/gateway.log")"
