#!/usr/bin/env bash
# What sharing rate-limit budgets through Redis costs: requests per second and p50/p99 latency of an
# authenticated cheap route (a write refused by a read-only endpoint's flavor, after the secret check
# and the quota, without any call to Confluence) on two gateways in the same run, one with local
# budgets and one with --redis-url on a loopback redis-server; then the Redis one again with Redis
# stopped (every request falls back to the local budget). Needs wrk and redis-server (Debian:
# apt-get install -y wrk redis-server).
# Each is run with 64 connections (throughput) and with 1 (latency without queueing).
# CONFLAGENT_REDIS_DEADLINE_MS in the environment sets the Redis gateway's deadline (default 5).
# Usage: bash benches/redis.sh [seconds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-10}"
for tool in wrk redis-server; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk redis-server >/dev/null; }
done

cargo build --release --quiet --bin conflagent

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/config.d"
# The largest quota there is, so the run measures the budget check rather than 429s.
cat > "$work/config.d/conflagent.bench.properties" <<PROPS
base_url=http://127.0.0.1:9
space_key=DOC
root_page_id=1
gpt_shared_secret=bench-secret-0123456789abcdef
api_token=unused
flavor=read
rate_limit_per_minute=1000000
rate_limit_burst=100000
PROPS
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"title":"T","body":"b"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-secret-0123456789abcdef"
LUA

redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no --requirepass bench-redis-password \
    >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=($redis_pid)
for _ in $(seq 100); do
    redis-cli -p 16379 -a bench-redis-password --no-auth-warning ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
RUST_LOG=warn target/release/conflagent serve --config-dir "$work/config.d" \
    --listen 127.0.0.1:18090 --metrics-listen 127.0.0.1:19474 &
pids+=($!)
RUST_LOG=warn CONFLAGENT_REDIS_URL=redis://:bench-redis-password@127.0.0.1:16379 \
    target/release/conflagent serve --config-dir "$work/config.d" \
    --listen 127.0.0.1:18091 --metrics-listen 127.0.0.1:19475 &
pids+=($!)
for port in 18090 18091; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

# run LABEL PORT CONNECTIONS: one wrk run; prints requests/s, p50 and p99.
run() {
    local out threads=$(( $3 < 2 ? 1 : 2 ))
    out="$(wrk -t"$threads" -c"$3" -d"${duration}s" --latency -s "$work/post.lua" \
        "http://127.0.0.1:$2/endpoint/bench/pages")"
    awk -v label="$1" '
        /Requests\/sec/ {rps = $2}
        /^ +50%/ {p50 = $2}
        /^ +99%/ {p99 = $2}
        /requests in/ {total = $1}
        /Non-2xx/ {non2xx = $NF}
        END {printf "%-40s %10s req/s   p50 %8s   p99 %8s   (%s requests)\n", label, rps, p50, p99, total}
    ' <<<"$out"
}
fallbacks() {
    curl -fs http://127.0.0.1:19475/metrics \
        | awk '/^conflagent_ratelimit_backend_fallbacks_total/ {match($0, /reason="[a-z]+"/); printf "%s=%s ", substr($0, RSTART + 8, RLENGTH - 9), $NF}'
}
statuses() {
    curl -fs "http://127.0.0.1:$1/metrics" | awk '/^conflagent_http_requests_total\{.*route="\/pages".*method="POST"/ {
        match($0, /status="[0-9]+"/); s = substr($0, RSTART + 8, 3); n[s] += $NF }
        END {for (s in n) printf "%s: %d  ", s, n[s]; print ""}'
}

echo "POST /endpoint/bench/pages (authenticated, refused by flavor), ${duration}s per run"
for connections in 64 1; do
    run "local budgets, $connections conn" 18090 "$connections"
    run "Redis budgets, $connections conn" 18091 "$connections"
    echo "    answered locally (fallbacks) so far: $(fallbacks)"
    run "local budgets (again), $connections conn" 18090 "$connections"
    run "Redis budgets (again), $connections conn" 18091 "$connections"
    echo "    answered locally (fallbacks) so far: $(fallbacks)"
done
echo "statuses, local: $(statuses 19474)"
echo "statuses, Redis: $(statuses 19475)"
kill "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
for connections in 64 1; do
    run "Redis down (local fallback), $connections conn" 18091 "$connections"
done
echo "answered locally (fallbacks): $(fallbacks)"
