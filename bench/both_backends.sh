#!/usr/bin/env bash
# Runs one Python bench script against one Orrery binary on both backends: starts it on a fresh
# SQLite data directory (memory brokers) and on a fresh PostgreSQL database + a Redis namespace
# of its own, runs `SCRIPT API_URL ARGS...` with the client virtualenv's Python against each,
# prints its output line per backend, cleans up.
#   bash bench/both_backends.sh BIN bench/events_ingest.py [EVENTS] [SOCKETS]
#   bash bench/both_backends.sh BIN bench/logs_batch.py [LOGS] [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:?usage: both_backends.sh BIN SCRIPT [ARGS...]}"
script="${2:?usage: both_backends.sh BIN SCRIPT [ARGS...]}"
shift 2
py="${ORRERY_CACHE:-$HOME/.cache/orrery}/venv-prefect-3.9.1/bin/python"
pg_admin="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
tmp=$(mktemp -d)
db="orrery_bench_$$"
pid=""
args=("$@")
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "bench-$$:*" | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() {  # name, extra env...
  local name=$1; shift
  local p; p=$(port)
  env ORRERY__SERVER__BIND="127.0.0.1:$p" ORRERY__DATABASE__DATA_DIR="$tmp/$name" "$@" \
    "$bin" serve >"$tmp/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$p/api/ready" >/dev/null && break; sleep 0.1; done
  printf '%s ' "$name"
  "$py" "$script" "http://127.0.0.1:$p/api" "${args[@]}"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}
run sqlite
psql "$pg_admin" -qc "CREATE DATABASE $db" >/dev/null
run pg ORRERY__DATABASE__URL="${pg_admin%/*}/$db" ORRERY__REDIS__URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}" \
  ORRERY__REDIS__NAMESPACE="bench-$$"
