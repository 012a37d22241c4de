#!/usr/bin/env bash
# HTTP fuzzing of a live `tend serve` (`make http-fuzz`, part of `make test`). Schemathesis, driven by
# the OpenAPI document that Tend serves, sends generated requests (valid and invalid) to every
# operation and runs all its checks: no 5xx, no undocumented status code or content type, every answer
# matches its schema, schema-valid requests are accepted (2xx, or 404/409 for a missing worker or a
# refused transition) and schema-invalid ones refused, 405 for undocumented methods, 401 without the
# token. The one exception is below, with its reason.
#
# Tend is started here on 127.0.0.1 (a free port) with a bearer token, a private data directory and a
# small config (a spawn pool of demo-workers, a reported pool), and stopped on exit. Bounded: a fixed
# seed, a fixed number of examples per operation, a time limit; nothing leaves 127.0.0.1.
#
# Environment: TEND (binary, default target/debug/tend), FUZZ_VENV (default target/fuzz-venv),
# HTTP_FUZZ_EXAMPLES (per operation, default 60), HTTP_FUZZ_SEED, HTTP_FUZZ_CHECKS (default all;
# `not_a_server_error` for the 5xx check alone), HTTP_FUZZ_TIME_LIMIT
# (seconds, default 110: the run is stopped, and fails, past it), HTTP_FUZZ_REPORT (a directory to
# keep the NDJSON report and Tend's log in).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
TEND=${TEND:-target/debug/tend}
VENV=$(realpath -m "${FUZZ_VENV:-target/fuzz-venv}")
EXAMPLES=${HTTP_FUZZ_EXAMPLES:-60}
SEED=${HTTP_FUZZ_SEED:-20261202}
CHECKS=${HTTP_FUZZ_CHECKS:-all}
TIME_LIMIT=${HTTP_FUZZ_TIME_LIMIT:-110}
REPORT=${HTTP_FUZZ_REPORT:+$(realpath -m "$HTTP_FUZZ_REPORT")}

[ -x "$TEND" ] || { echo "http-fuzz: no tend binary at $TEND (cargo build --bin tend)"; exit 1; }
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d)
tend_pid=""
cleanup() {
  if [ -n "$tend_pid" ] && kill -0 "$tend_pid" 2>/dev/null; then
    kill -TERM "$tend_pid"
    for _ in $(seq 100); do kill -0 "$tend_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$tend_pid" 2>/dev/null || true
    wait "$tend_pid" 2>/dev/null || true
  fi
  if [ -n "$REPORT" ]; then mkdir -p "$REPORT"; cp -r "$work"/. "$REPORT"/; fi
  rm -rf "$work"
}
trap cleanup EXIT

token="fuzz-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
cat > "$work/tend.toml" <<TOML
[[pool]]
name = "demo"
command = ["\$TEND_EXE", "demo-worker", "--requests-per-sec", "2"]
size = 2
profile = "intensive"
stop_grace = "1s"
requests_log = "request .* handled"

[[pool]]
name = "reported"
source = "reported"
TOML

# Schemathesis sends wrong tokens on purpose (its auth checks): the brake on wrong tokens (10 a minute
# per address by default, then 429) is raised out of its way, or every later request would be a 429.
TEND_TOKEN="$token" TEND_DATA_DIR="$work/data" NO_COLOR=1 TEND_LOG=warn TEND_AUTH_MAX_FAILURES=1000000 \
  "$TEND" serve --config "$work/tend.toml" --listen 127.0.0.1:0 2> "$work/tend.log" &
tend_pid=$!

base=""
for _ in $(seq 300); do
  base=$(sed -n 's/^tend: listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/tend.log" | head -1)
  [ -n "$base" ] && break
  kill -0 "$tend_pid" 2>/dev/null || { echo "http-fuzz: tend exited:"; cat "$work/tend.log"; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "http-fuzz: tend did not start listening:"; cat "$work/tend.log"; exit 1; }
case "$base" in http://127.0.0.1:*) ;; *) echo "http-fuzz: refusing a non-loopback base $base"; exit 1 ;; esac

get() { python3 -c 'import sys,urllib.request as u; r=u.Request(sys.argv[1], headers={"Authorization":"Bearer "+sys.argv[2]}); sys.stdout.buffer.write(u.urlopen(r, timeout=10).read())' "$base$1" "$token"; }
get /api/v1/openapi.json > "$work/openapi.json"

# Path parameters name a real worker and pool, so that the operations on one reach past the 404.
worker=""
for _ in $(seq 100); do
  worker=$(get /api/v1/workers | python3 -c 'import json,sys; w=[x["id"] for x in json.load(sys.stdin) if x["pool"]=="demo"]; print(w[0] if w else "")')
  [ -n "$worker" ] && break
  sleep 0.1
done
[ -n "$worker" ] || { echo "http-fuzz: no demo worker appeared:"; cat "$work/tend.log"; exit 1; }
cat > "$work/schemathesis.toml" <<TOML
[parameters]
"path.id" = "$worker"
"path.name" = "demo"

# \`to\` must be after \`from\`: a constraint between two parameters that OpenAPI cannot state. A
# generated pair in the wrong order is rightly refused (400), so the operations with a time window are
# not held to "every schema-valid request is accepted"; every other check applies to them.
[[operations]]
include-path-regex = ".*(/history|/recycles\$|/export\\\\.csv\$)"
checks.positive_data_acceptance.enabled = false
TOML

# All checks is the default: named on the command line they would override the exception above.
check_args=()
[ "$CHECKS" = all ] || check_args=(--checks "$CHECKS")

# The SSE streams never end: they are left out (an event stream is not a request/response operation).
# Run in the scratch directory: schemathesis keeps its replay data under the working directory.
status=0
cd "$work"
timeout "$TIME_LIMIT" "$VENV/bin/schemathesis" --config-file "$work/schemathesis.toml" \
  run "$work/openapi.json" --url "$base" \
  -H "Authorization: Bearer $token" \
  "${check_args[@]}" --seed "$SEED" --max-examples "$EXAMPLES" \
  --phases examples,coverage,fuzzing --workers 1 --request-timeout 10 --no-shrink \
  --exclude-path /api/v1/events --generation-database none \
  --report ndjson --report-ndjson-path "$work/schemathesis.ndjson" \
  --output-truncate false || status=$?

if ! kill -0 "$tend_pid" 2>/dev/null; then
  echo "http-fuzz: tend died during the run:"; cat "$work/tend.log"; exit 1
fi
if grep -q "panicked at" "$work/tend.log"; then
  echo "http-fuzz: tend logged a panic:"; grep -A5 "panicked at" "$work/tend.log"; status=1
fi
exit "$status"
