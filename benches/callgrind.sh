#!/usr/bin/env bash
# Instructions per request, counted by callgrind: steadier than req/s on a shared machine. Counts
# the gateway's `GET /endpoint/<name>/health`, an authenticated request refused by the endpoint's
# flavor (as in benches/http.sh) and the hello-world ceiling, each under wrk at 8 connections for a
# few seconds after a warm-up; the counters are zeroed before and dumped after each measurement.
# callgrind runs SHA-256 in software, which adds about 3,500 instructions to the authenticated
# route that the CPU's SHA extensions do not cost natively.
# Needs valgrind and wrk (Debian: apt-get install -y valgrind wrk).
# Usage: bash benches/callgrind.sh [seconds per measurement]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-6}"
for tool in valgrind wrk; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind wrk >/dev/null; }
done

source benches/request_path.sh

valgrind --tool=callgrind --callgrind-out-file="$work/gateway.out" target/release/conflagent serve \
    --config-dir "$work/config.d" --listen 127.0.0.1:18090 --metrics-listen 127.0.0.1:19474 \
    --drain-delay 0 >"$work/gateway.log" 2>"$work/gateway.err" &
pids+=($!)
HELLO_LISTEN=127.0.0.1:18091 valgrind --tool=callgrind --callgrind-out-file="$work/hello.out" \
    "$hello" >/dev/null 2>"$work/hello.err" &
pids+=($!)
for port in 18090 18091; do
    for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
done

# Prints the instructions per request of one measurement: zero, load, dump, divide.
measure() {
    local pid="$1" out="$2" label="$3"
    shift 3
    wrk -t1 -c8 -d2s "$@" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    local requests
    requests="$(wrk -t1 -c8 -d"${duration}s" "$@" | awk '/requests in/ {print $1}')"
    callgrind_control -d "$pid" >/dev/null 2>&1
    local dump
    dump="$(ls -t "$out".* | head -1)"
    local total
    total="$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
    echo "$label: $((total / requests)) instructions per request ($requests requests)"
}

measure "${pids[1]}" "$work/hello.out" "hello-world ceiling" http://127.0.0.1:18091/health
measure "${pids[0]}" "$work/gateway.out" "GET /endpoint/bench/health" http://127.0.0.1:18090/endpoint/bench/health
measure "${pids[0]}" "$work/gateway.out" "authenticated GET (403 by flavor)" \
    -H "Authorization: Bearer $secret" http://127.0.0.1:18090/endpoint/bench/pages/Home
