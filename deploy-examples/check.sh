#!/usr/bin/env bash
# Validates every deployment example with the tool that consumes it:
# systemd-analyze, kubernetes-validate, caddy, nginx and promtool, plus
# contract_check.py for what no schema knows (timeouts against the shutdown
# grace and the upstream deadline, probes on the private listener, no subPath,
# metrics kept private).
#
# Run from anywhere as `bash deploy-examples/check.sh`. Installs missing
# checkers itself (Debian packages with apt-get, kubernetes-validate from PyPI
# into a cached virtualenv), prints one line per check, and exits 1 when any
# example is broken. Safe to run repeatedly: installed tools are reused.
set -euo pipefail

examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kubernetes_validate_version="1.37.0"
venv="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/conflagent-deploy-check/venv-kv-$kubernetes_validate_version"
work="$(mktemp -d)"
cleanup=("$work")
trap 'rm -rf "${cleanup[@]}"' EXIT

# quietly COMMAND...: runs an install step, showing its output only if it fails.
quietly() {
    if ! "$@" >"$work/install.log" 2>&1; then
        cat "$work/install.log"
        echo "install step failed: $*"
        exit 1
    fi
}

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_debian_packages() {
    local missing=()
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v caddy >/dev/null || missing+=(caddy)
    command -v nginx >/dev/null || missing+=(nginx)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v openssl >/dev/null || missing+=(openssl)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
    ((${#missing[@]})) || return 0
    echo "installing Debian packages: ${missing[*]}"
    # Installing nginx and prometheus would start their daemons; this run
    # only needs the binaries, so forbid service starts while installing.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 0755 /usr/sbin/policy-rc.d
        cleanup+=(/usr/sbin/policy-rc.d)
    fi
    quietly as_root apt-get update -qq
    quietly as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_kubernetes_validate() {
    if [[ -x "$venv/bin/kubernetes-validate" ]]; then return 0; fi
    echo "installing kubernetes-validate $kubernetes_validate_version into $venv"
    rm -rf "$venv"
    quietly python3 -m venv "$venv"
    quietly "$venv/bin/pip" install -q "kubernetes-validate==$kubernetes_validate_version"
}

failures=0

# check NAME COMMAND...: runs COMMAND, prints "ok NAME" or "FAIL NAME" followed
# by the command's output, indented.
check() {
    local name="$1" output
    shift
    if output="$("$@" 2>&1)"; then
        printf 'ok    %s\n' "$name"
    else
        printf 'FAIL  %s\n' "$name"
        printf '%s\n' "$output" | sed 's/^/      /'
        failures=$((failures + 1))
    fi
}

# systemd-analyze verify reports most mistakes (unknown keys, bad values) as
# warnings and still exits 0, so any line about the unit counts as a failure.
verify_systemd_unit() {
    local dir="$work/systemd" output status=0
    mkdir -p "$dir/bin"
    printf '#!/bin/sh\nexit 0\n' >"$dir/bin/conflagent"
    chmod +x "$dir/bin/conflagent"
    sed "s#/usr/local/bin/conflagent#$dir/bin/conflagent#g" \
        "$examples/systemd/conflagent.service" >"$dir/conflagent.service"
    output="$(systemd-analyze verify --man=no "$dir/conflagent.service" 2>&1)" || status=$?
    if [[ $status -ne 0 ]] || grep -q 'conflagent\.service' <<<"$output"; then
        printf '%s\n' "$output"
        return 1
    fi
}

# kubernetes-validate knows only built-in kinds and merely warns about others,
# so a warning fails too (it would hide a misspelt apiVersion or kind). The
# ServiceMonitor is a Prometheus Operator CRD without a bundled schema:
# contract_check.py checks its fields and what it selects instead.
validate_kubernetes() {
    local files=() file output status=0
    for file in "$examples"/kubernetes/*.yaml; do
        [[ $(basename "$file") == servicemonitor.yaml ]] || files+=("$file")
    done
    files+=("$examples"/kubernetes/replicas/*.yaml)
    output="$("$venv/bin/kubernetes-validate" --strict --quiet "${files[@]}" 2>&1)" || status=$?
    printf '%s' "$output"
    [[ $status -eq 0 && -z $output ]]
}

# nginx -t on a wrapper configuration that includes a copy of our file whose
# certificate paths point at a throwaway self-signed certificate.
test_nginx() {
    local dir="$work/nginx"
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=gpt.example.com \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    sed -e "s#^\(\s*ssl_certificate\)\s.*#\1 $dir/cert.pem;#" \
        -e "s#^\(\s*ssl_certificate_key\)\s.*#\1 $dir/key.pem;#" \
        "$examples/nginx/conflagent.conf" >"$dir/conflagent.conf"
    cat >"$dir/nginx.conf" <<EOF
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/conflagent.conf;
}
EOF
    nginx -t -q -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
}

install_debian_packages
install_kubernetes_validate
python="$venv/bin/python"

check "systemd-analyze verify systemd/conflagent.service" verify_systemd_unit
check "contract systemd/conflagent.service" "$python" "$examples/contract_check.py" systemd "$examples"
check "kubernetes-validate --strict kubernetes/*.yaml kubernetes/replicas/*.yaml" validate_kubernetes
check "contract kubernetes/ (incl. servicemonitor.yaml)" "$python" "$examples/contract_check.py" kubernetes "$examples"
check "contract kubernetes/replicas/ over kubernetes/" "$python" "$examples/contract_check.py" kubernetes-replicas "$examples"
check "caddy validate caddy/Caddyfile" caddy validate --adapter caddyfile --config "$examples/caddy/Caddyfile"
check "contract caddy/Caddyfile" "$python" "$examples/contract_check.py" caddy "$examples"
check "nginx -t nginx/conflagent.conf" test_nginx
check "contract nginx/conflagent.conf" "$python" "$examples/contract_check.py" nginx "$examples"
check "promtool check config prometheus/prometheus.yml" promtool check config "$examples/prometheus/prometheus.yml"
check "promtool check rules prometheus/conflagent.rules.yml" promtool check rules "$examples/prometheus/conflagent.rules.yml"
check "promtool test rules prometheus/conflagent.rules.test.yml" promtool test rules "$examples/prometheus/conflagent.rules.test.yml"
check "contract Containerfile" "$python" "$examples/contract_check.py" containerfile "$examples"

if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all deployment examples valid"
