#!/usr/bin/env bash
# A bounded schemathesis run against one endpoint of a running gateway: it fetches the endpoint's own
# OpenAPI document and sends generated requests (valid and invalid) to every operation the document
# lists, failing on any 5xx and on any response that does not match the document (status, content
# type, envelope schema).
#
# The run creates, changes and deletes pages: point it only at a gateway whose endpoint talks to the
# Confluence simulator, never at a real space.
#
# Usage: tests/schemathesis.sh <endpoint-url> [secret]
#   <endpoint-url>  e.g. http://127.0.0.1:8080/endpoint/docs
#   secret          the endpoint's Bearer secret; defaults to $CONFLAGENT_SECRET (preferred, since
#                   arguments show up in the process list)
# Bounds (environment): SCHEMATHESIS_MAX_EXAMPLES (default 25 per operation),
# SCHEMATHESIS_MAX_TIME (default 120 seconds for the whole run), SCHEMATHESIS_SEED (default 1, so a
# failure reproduces).
# Needs: pip install schemathesis==4.32.5
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 <endpoint-url> [secret]" >&2
    exit 2
fi
endpoint_url="${1%/}"
secret="${2:-${CONFLAGENT_SECRET:-}}"
if [[ -z "$secret" ]]; then
    echo "$0: no secret: pass it as the second argument or set CONFLAGENT_SECRET" >&2
    exit 2
fi
if ! command -v schemathesis >/dev/null 2>&1; then
    echo "$0: schemathesis is not installed; run: pip install schemathesis==4.32.5" >&2
    exit 2
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT
# The secret reaches schemathesis through the environment and its config file, never through
# arguments that other users of the machine could read.
export CONFLAGENT_SECRET="$secret"
cat >"$work_dir/schemathesis.toml" <<'TOML'
headers = { Authorization = "Bearer ${CONFLAGENT_SECRET}" }
TOML
# schemathesis keeps a cache in the working directory; keep it out of the repository.
cd "$work_dir"

# Positive and negative data; the examples, coverage and fuzzing phases (the document declares no
# links, so a stateful phase would have nothing to follow). One worker keeps the simulator's page
# tree changes in a readable order.
schemathesis --config-file "$work_dir/schemathesis.toml" run "$endpoint_url/openapi.json" \
    --url "$endpoint_url" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --phases examples,coverage,fuzzing \
    --mode all \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-120}" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --workers 1 \
    --request-timeout 10 \
    --wait-for-schema 10 \
    --report-dir "$work_dir/report"
