# Shared by benches/http.sh and benches/callgrind.sh (sourced, not run): builds the gateway and the
# hello-world ceiling, and writes the one endpoint both benches measure. Sets `hello` (the
# hello-world binary), `work` (a temporary directory removed on exit, with the endpoint in
# `$work/config.d`), `secret` (the endpoint's secret) and `pids` (processes killed on exit).

cargo build --release --quiet --bin conflagent
hello="$(cargo bench --bench hello_hyper --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hello_hyper" and m.get("executable"):
        print(m["executable"])')"

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/config.d"
# Flavor `upload` does not serve page reads: the authenticated GET of a page is refused after the
# secret check and the quota, without an upstream call; no quota, so every request gets that far.
secret=bench-secret-0123456789abcdef
cat > "$work/config.d/conflagent.bench.properties" <<PROPS
base_url=http://127.0.0.1:9
space_key=DOC
root_page_id=1
gpt_shared_secret=$secret
api_token=unused
flavor=upload
rate_limit_per_minute=0
PROPS
