#!/usr/bin/env bash
# What sharing rate-limit budgets through Redis costs: requests per second and p50/p99 latency of an
# authenticated cheap route (a write refused by a read-only endpoint's flavor, after the secret check
# and the quota, without any call to Confluence) on two gateways in the same run, one with local
# budgets and one with --redis-url on a loopback redis-server; then the Redis one again with Redis
# stopped (every request falls back to the local budget). Needs wrk and redis-server (Debian:
# apt-get install -y wrk redis-server).
# Usage: bash benches/redis.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-10}"
connections="${2:-64}"
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

# run LABEL PORT: one wrk run; prints requests/s, p50, p99 and the status mix.
run() {
    local out
    out="$(wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/post.lua" \
        "http://127.0.0.1:$2/endpoint/bench/pages")"
    awk -v label="$1" '
        /Requests\/sec/ {rps = $2}
        /^ +50%/ {p50 = $2}
        /^ +99%/ {p99 = $2}
        /requests in/ {total = $1}
        /Non-2xx/ {non2xx = $NF}
        END {printf "%-34s %10s req/s   p50 %8s   p99 %8s   (%s requests)\n", label, rps, p50, p99, total}
    ' <<<"$out"
}
statuses() {
    curl -fs "http://127.0.0.1:$1/metrics" | awk '/^conflagent_http_requests_total\{.*route="\/pages".*method="POST"/ {
        match($0, /status="[0-9]+"/); s = substr($0, RSTART + 8, 3); n[s] += $NF }
        END {for (s in n) printf "%s: %d  ", s, n[s]; print ""}'
}

echo "POST /endpoint/bench/pages (authenticated, refused by flavor), $connections connections, ${duration}s each"
run "local budgets" 18090
run "Redis budgets" 18091
run "local budgets (again)" 18090
run "Redis budgets (again)" 18091
echo "statuses, local: $(statuses 19474)"
echo "statuses, Redis: $(statuses 19475)"
kill "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
run "Redis down: local fallback" 18091
curl -fs http://127.0.0.1:19475/metrics | grep '^conflagent_ratelimit_backend_fallbacks_total' || true
