#!/usr/bin/env bash
# Trigger-to-action latency (GitHub issue 16), side by side: for each server, an automation that
# runs a deployment on an event, AUTOMATIONS_EVENTS events sent at AUTOMATIONS_RATE per second,
# and the time from each event to the `prefect.automation.action.executed` that reports its
# action (bench/automations_latency.py). A missing or doubled action fails the run.
#
#   bash bench/automations.sh                        # reference (SQLite), Orrery PG, Orrery SQLite
#
# Knobs: AUTOMATIONS_SERVERS (any of ref_sqlite orrery_pg orrery_sqlite), AUTOMATIONS_EVENTS (300),
# AUTOMATIONS_RATE (20), ORRERY_BIN (target/release/orrery), BENCH_PG_URL, BENCH_REDIS_URL,
# ORRERY_CACHE, BENCH_KEEP, BENCH_NICE as for run.sh. Writes bench/results/<date>-automations.md.
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
servers="${AUTOMATIONS_SERVERS:-ref_sqlite orrery_pg orrery_sqlite}"
events="${AUTOMATIONS_EVENTS:-300}"
rate="${AUTOMATIONS_RATE:-20}"
nice_n="${BENCH_NICE:-0}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-automations.XXXXXX")
# shellcheck source=bench/lib.sh
source "$bench/lib.sh"

[ -x "$py" ] || "$root/scripts/compat.sh" --venv-only >/dev/null
[ -x "$py" ] || die "no prefect virtualenv at $venv"
case " $servers " in *" orrery_"*) [ -x "$bin" ] || die "no Orrery binary at $bin (cargo build --release)" ;; esac
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

rows=()
for name in $servers; do
  port=$(free_port)
  api="http://127.0.0.1:$port/api"
  case $name in
    ref_sqlite)
      mkdir -p "$tmp/ref-home"
      start_server "$name" "PREFECT_HOME=$tmp/ref-home" "PREFECT_SERVER_ANALYTICS_ENABLED=false" \
        "PREFECT_API_DATABASE_CONNECTION_URL=sqlite+aiosqlite:///$tmp/ref.db" \
        -- "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port"
      wait_ready "$name" "$api/health" "$server_pid" 180 ;;
    orrery_pg)
      new_db automations
      ns="orrery-automations-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      redis_nss+=("$ns")
      start_server "$name" "ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__URL=$(db_url postgres "$db")" \
        "ORRERY__DATABASE__DATA_DIR=$tmp/pg-data" "ORRERY__REDIS__URL=$redis_url" "ORRERY__REDIS__NAMESPACE=$ns" -- "$bin"
      wait_ready "$name" "$api/ready" "$server_pid" 120 ;;
    orrery_sqlite)
      start_server "$name" "ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__DATA_DIR=$tmp/sqlite-data" -- "$bin"
      wait_ready "$name" "$api/ready" "$server_pid" 120 ;;
    *) die "unknown server $name" ;;
  esac
  log "$name: $events events at $rate/s"
  "$py" "$bench/automations_latency.py" "$api" --events "$events" --rate "$rate" --out "$tmp/$name.json" ||
    log "$name: actions missing or doubled (see $tmp/$name.json)"
  rows+=("| $name | $("$py" -c "import json,sys; r=json.load(open(sys.argv[1])); print(' | '.join(str(r[k]) for k in ['executed','missing','doubled','p50_ms','p90_ms','p99_ms','max_ms']))" "$tmp/$name.json") |")
  stop_server "$server_pid"
done

out="$bench/results/$(date +%Y-%m-%d-%H%M%S)-automations.md"
{
  echo "# Trigger-to-action latency, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Commit $rev. $events events at $rate/s through \`POST /events\`, each firing an automation whose"
  echo "action runs a deployment; latency = the action's \`executed\` event minus the triggering event's"
  echo "\`occurred\` (same clock). Machine: $(nproc) cores."
  echo
  echo "| server | executed | missing | doubled | p50 ms | p90 ms | p99 ms | max ms |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$out"
cat "$out"
