#!/usr/bin/env bash
# The chaos suite: hostile clients, stalled uploads, config churn under load, upstream faults and
# shutdown with stuck clients, against the release build. Prints the figures the README quotes.
# Not part of `cargo test`. Needs python3 (standard library only) and curl.
# Usage: bash benches/chaos.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# 10,000 hostile connections need file descriptors on both sides.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 12000 ] || { echo "ulimit -n is $(ulimit -n); 12000 or more needed" >&2; exit 1; }

cargo build --release --quiet --locked --bin conflagent
bin=target/release/conflagent
client=benches/chaos_client.py

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The simulator with the demo handbook (its own gateway is not used).
RUST_LOG=warn "$bin" demo --listen 127.0.0.1:18090 --metrics-listen 127.0.0.1:19474 \
    --rate-limit-per-minute 0 > "$work/demo.out" &
pids+=($!)
for _ in $(seq 300); do grep -q "^Config:" "$work/demo.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^Config:" "$work/demo.out" || { echo "the demo did not start:" >&2; cat "$work/demo.out" >&2; exit 1; }
demo_dir="$(awk '/^Config:/ {print $2}' "$work/demo.out")"
secret="$(awk '/^Secret:/ {print $2}' "$work/demo.out")"
sim_port="$(sed -n 's|^base_url=http://127.0.0.1:\([0-9]*\).*|\1|p' "$demo_dir/conflagent.demo.properties")"

mkdir "$work/config.d"
cp "$demo_dir/conflagent.demo.properties" "$work/config.d/conflagent.bench.properties"
RUST_LOG=warn "$bin" serve --config-dir "$work/config.d" --listen 127.0.0.1:18080 \
    --metrics-listen 127.0.0.1:19464 > "$work/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)
for _ in $(seq 100); do curl -fs http://127.0.0.1:18080/health >/dev/null && break; sleep 0.1; done

health=/endpoint/bench/health
read_path=/endpoint/bench/pages/Engineering
echo "== normal-client latency (GET $health, one connection per request)"
python3 "$client" idle 127.0.0.1 18080 "$health" 0 | grep -v opened
echo "== with 10,000 hostile idle connections (nothing, 'P', a stalled HTTP/2 preface)"
python3 "$client" idle 127.0.0.1 18080 "$health" 10000
sleep 2
echo "== with 500 slowloris connections (a header line every 1-2 s, reconnecting when cut)"
python3 "$client" slowloris 127.0.0.1 18080 "$health" 500
sleep 2
echo "== 300 uploads stalled after 900 KB of 1,000,000 bytes"
python3 "$client" uploads 127.0.0.1 18080 bench "$secret" "$gateway" 300
echo "== config churn under load (20 files rewritten every 50-100 ms, the served one renamed over) for 10 s"
python3 "$client" churn 127.0.0.1 18080 "$read_path" "$secret" "$work/config.d" 10
echo "== upstream faults (reads with a 10 s deadline through a proxy in front of the simulator)"
python3 "$client" faults 127.0.0.1 18080 bench "$secret" "$sim_port" "$work/config.d" "$read_path"
echo "== shutdown with 5 half-sent requests on each listener"
python3 "$client" shutdown "$bin" "$work/config.d" 3
echo "== gateway warnings and errors during the run: $(grep -cE ' (WARN|ERROR) ' "$work/gateway.log" || true), most frequent:"
grep -E ' (WARN|ERROR) ' "$work/gateway.log" | sed -E 's/^[^ ]+ +//; s/(request_id|duration_ms)=[^ ]+ //g' | cut -c1-150 \
    | sort | uniq -c | sort -rn | head -5 || true
