#!/usr/bin/env bash
# What authentication costs: lifecycle throughput of one Orrery (PostgreSQL + Redis) in
# auth.mode = "open" and in "required" with every request carrying a developer's API key
# (LOADGEN_AUTHORIZATION), interleaved (open, required, required, open, ...) so the machine's
# drift hits both alike, and the open-source server once, in the same run.
#
#   bash bench/auth.sh
#
# Knobs (environment):
#   AUTH_ROUNDS      rounds of (open, required) (default 2, alternating order)
#   AUTH_REFERENCE   1 (default) also measures `prefect server start` on PostgreSQL; 0 skips it
#   BENCH_CLIENTS    lifecycle clients (default 16), BENCH_DURATION (default 20s), BENCH_WARMUP (2s)
#   ORRERY_BIN, BENCH_PG_URL, BENCH_REDIS_URL, ORRERY_CACHE, BENCH_KEEP, BENCH_NICE as for run.sh
# Each run is on a fresh database. Prints one line per run and the means.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench="$root/bench"

PREFECT_VERSION=3.9.1
cache="${ORRERY_CACHE:-$HOME/.cache/orrery}"
venv="$cache/venv-prefect-$PREFECT_VERSION"
py="$venv/bin/python"
bin="${ORRERY_BIN:-target/release/orrery}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
pg_admin="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
redis_url="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
rounds="${AUTH_ROUNDS:-2}"
with_ref="${AUTH_REFERENCE:-1}"
clients="${BENCH_CLIENTS:-16}"
duration="${BENCH_DURATION:-20s}"
warmup="${BENCH_WARMUP:-2s}"
nice_n="${BENCH_NICE:-0}"

# shellcheck source=bench/lib.sh
source "$bench/lib.sh"

[ -x "$py" ] || "$root/scripts/compat.sh" --venv-only >/dev/null
[ -x "$py" ] || die "no prefect virtualenv at $venv"
command -v psql >/dev/null || die "psql is needed"
log "building the load generator (bench/target)"
CARGO_TARGET_DIR="$bench/target" cargo build --quiet --release --manifest-path "$bench/loadgen/Cargo.toml"
loadgen="$bench/target/release/orrery-loadgen"
[ -x "$bin" ] || cargo build --quiet --release
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-auth.XXXXXX")

# mode -> prints "mode lifecycles/s errors p99_ms"
run() {
  local mode=$1 url ns port pid api auth="" out
  new_db auth
  url=$(db_url postgres "$db")
  port=$(free_port)
  api="http://127.0.0.1:$port/api"
  if [ "$mode" = reference ]; then
    mkdir -p "$tmp/ref-home-$port"
    start_server "ref-$port" "PREFECT_HOME=$tmp/ref-home-$port" \
      "PREFECT_API_DATABASE_CONNECTION_URL=$(db_url postgresql+asyncpg "$db")" \
      "PREFECT_SERVER_ANALYTICS_ENABLED=false" -- "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port"
    pid=$server_pid
    wait_ready "ref-$port" "$api/health" "$pid" 180
  else
    ns="orrery-auth-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    redis_nss+=("$ns")
    local env=("ORRERY__DATABASE__URL=$url" "ORRERY__REDIS__URL=$redis_url" "ORRERY__REDIS__NAMESPACE=$ns"
               "ORRERY__DATABASE__DATA_DIR=$tmp/data-$port" "ORRERY__AUTH__MODE=$mode")
    env "${env[@]}" "$bin" migrate >"$tmp/migrate.log" 2>&1
    if [ "$mode" = required ]; then
      env "${env[@]}" "$bin" user add bench@example.com >>"$tmp/admin.log" 2>&1
      env "${env[@]}" "$bin" access grant --workspace default --user bench@example.com --role developer >>"$tmp/admin.log" 2>&1
      auth="Bearer $(env "${env[@]}" "$bin" api-key create --user bench@example.com --name bench 2>>"$tmp/admin.log")"
    fi
    start_server "$mode-$port" "ORRERY__SERVER__BIND=127.0.0.1:$port" "${env[@]}" -- "$bin"
    pid=$server_pid
    wait_ready "$mode-$port" "$api/ready" "$pid" 120
  fi
  out="$tmp/run-$mode-$RANDOM.json"
  LOADGEN_AUTHORIZATION="$auth" nice -n "$nice_n" "$loadgen" lifecycle --url "$api" --clients "$clients" \
    --duration "$duration" --warmup "$warmup" >"$out"
  "$py" -c 'import json,sys; d=json.load(open(sys.argv[2]))
print(sys.argv[1], d["lifecycles_per_s"], d["errors"], d["set_state_ms"]["p99"])' "$mode" "$out"
  stop_server "$pid"
}

results="$tmp/results.txt"
: >"$results"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="open required"; else order="required open"; fi
  for mode in $order; do
    log "round $r: auth.mode $mode, $clients clients"
    run "$mode" | tee -a "$results"
  done
done
if [ "$with_ref" = 1 ]; then
  log "the open-source server, $clients clients"
  run reference | tee -a "$results"
fi
"$py" - "$results" <<'PYEOF'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
mean = {}
for mode in ("open", "required", "reference"):
    v = [float(r[1]) for r in rows if r[0] == mode]
    if not v:
        continue
    mean[mode] = statistics.mean(v)
    e = sum(int(r[2]) for r in rows if r[0] == mode)
    print(f"{mode}: {mean[mode]:.0f} lifecycles/s (runs: {', '.join(f'{x:.0f}' for x in v)}), errors {e}")
if "open" in mean and "required" in mean:
    print(f"required / open: {mean['required'] / mean['open']:.1%}")
if "reference" in mean and "required" in mean:
    print(f"required / reference: {mean['required'] / mean['reference']:.1f}x")
PYEOF
