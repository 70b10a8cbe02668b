#!/usr/bin/env bash
# A year of history: 1,000,000 flow runs and 2,000,000 task runs (with their states) loaded with
# SQL into each server's own database, then every route the UI and the client call timed on
# kept-alive and on new connections, side by side, and one table printed.
#
#   bash bench/million.sh                                   # Orrery on PostgreSQL and on SQLite
#   MILLION_SERVERS="ref_pg orrery_pg orrery_sqlite" bash bench/million.sh   # and the reference
#
# Knobs (environment):
#   MILLION_SERVERS  any of ref_pg orrery_pg orrery_sqlite (default: orrery_pg orrery_sqlite)
#   MILLION_RUNS     flow runs (default 1000000); MILLION_TASKS task runs per flow run (default 2)
#   MILLION_SECONDS  time spent per route and connection kind (default 6; at most 40 / 15 calls)
#   ORRERY_BIN       the Orrery binary (default target/release/orrery; built if missing)
#   MILLION_KEEP     1 keeps the loaded databases (PostgreSQL databases, the SQLite data directory)
#                    and prints how to reuse them
#   MILLION_REUSE    "name=where ..." reuses kept data instead of loading: ref_pg=DB orrery_pg=DB
#                    orrery_sqlite=DIR, with MILLION_NOW=<the epoch printed when they were kept>
#                    (Orrery's migrations still run first: new indexes are built on the old data)
#   BENCH_PG_URL, BENCH_REDIS_URL, ORRERY_CACHE, BENCH_KEEP, BENCH_NICE as for run.sh
# Writes bench/results/<date>-million.md. See bench/README.md, "A year of history".
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
servers="${MILLION_SERVERS:-orrery_pg orrery_sqlite}"
runs="${MILLION_RUNS:-1000000}"
tasks="${MILLION_TASKS:-2}"
seconds="${MILLION_SECONDS:-6}"
nice_n="${BENCH_NICE:-0}"

# shellcheck source=bench/lib.sh
source "$bench/lib.sh"

for s in $servers; do
  case $s in ref_pg | orrery_pg | orrery_sqlite) ;; *) die "MILLION_SERVERS: unknown server $s" ;; esac
done
[ -x "$py" ] || "$root/scripts/compat.sh" --venv-only >/dev/null
[ -x "$py" ] || die "no prefect virtualenv at $venv"
command -v psql >/dev/null || die "psql is needed"
command -v curl >/dev/null || die "curl is needed"
case " $servers " in *" orrery_sqlite "*) command -v sqlite3 >/dev/null || die "sqlite3 is needed" ;; esac
if [ ! -x "$bin" ]; then
  log "no Orrery binary at $bin: building it (cargo build --release)"
  cargo build --quiet --release
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-million.XXXXXX")
now="${MILLION_NOW:-$(date +%s)}"
keep="${MILLION_KEEP:-0}"
declare -A reuse=()
for kv in ${MILLION_REUSE:-}; do reuse[${kv%%=*}]=${kv#*=}; done
[ "${#reuse[@]}" = 0 ] || [ -n "${MILLION_NOW:-}" ] || die "MILLION_REUSE needs MILLION_NOW"
kept=()
meta="$tmp/meta.jsonl"
: >"$meta"

load() {  # name command... (the loader's SQL on stdin) -> records the load time
  local name=$1 t0=$SECONDS
  shift
  if [ -n "${reuse[$name]:-}" ]; then
    log "$name: reusing ${reuse[$name]}"
    load_s=0
    return
  fi
  log "$name: loading $runs flow runs and $((runs * tasks)) task runs"
  "$py" "$bench/million_load.py" "${name%%_*}-${name#*_}" "$runs" "$tasks" "$now" | "$@" >/dev/null
  load_s=$((SECONDS - t0))
  log "$name: loaded in ${load_s} s"
}

measure() {  # name api_url pid size
  local name=$1 api=$2 pid=$3 size=$4
  log "$name: timing routes"
  "$py" "$bench/million_routes.py" "${api%/api}" "$runs" "$now" "$seconds" >"$tmp/$name.jsonl"
  local rss
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  printf '{"server": "%s", "load_s": %s, "size_bytes": %s, "rss_kb": %s}\n' \
    "$name" "$load_s" "$size" "${rss:-0}" >>"$meta"
}

store_db() {  # name -> $db: the database to use (reused, kept or dropped at exit)
  if [ -n "${reuse[$1]:-}" ]; then
    db=${reuse[$1]}
  elif [ "$keep" = 1 ]; then
    db="million_$1_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    psql "$pg_admin" -qAtc "CREATE DATABASE $db" >/dev/null
    kept+=("$1=$db")
  else
    new_db "million_$1"
  fi
}

pg_size() { psql "$(db_url postgres "$1")" -qAtc "SELECT pg_database_size(current_database())"; }

for name in $servers; do
  port=$(free_port)
  api="http://127.0.0.1:$port/api"
  case $name in
    ref_pg)
      store_db "$name"
      url=$(db_url postgresql+asyncpg "$db")
      mkdir -p "$tmp/ref-home"
      [ -n "${reuse[$name]:-}" ] || PREFECT_HOME="$tmp/ref-home" PREFECT_API_DATABASE_CONNECTION_URL="$url" \
        "$venv/bin/prefect" server database upgrade -y >"$tmp/ref-migrate.log" 2>&1
      load "$name" psql -q -v ON_ERROR_STOP=1 "$(db_url postgres "$db")"
      start_server "$name" "PREFECT_HOME=$tmp/ref-home" "PREFECT_API_DATABASE_CONNECTION_URL=$url" \
        "PREFECT_SERVER_ANALYTICS_ENABLED=false" "PREFECT_SERVER_API_HOST=127.0.0.1" \
        "PREFECT_SERVER_API_PORT=$port" \
        -- "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port"
      wait_ready "$name" "$api/health" "$server_pid" 180
      measure "$name" "$api" "$server_pid" "$(pg_size "$db")"
      ;;
    orrery_pg)
      store_db "$name"
      url=$(db_url postgres "$db")
      ns="orrery-million-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      redis_nss+=("$ns")
      ORRERY__DATABASE__URL="$url" "$bin" migrate >"$tmp/orrery_pg-migrate.log" 2>&1
      load "$name" psql -q -v ON_ERROR_STOP=1 "$url"
      start_server "$name" "ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__URL=$url" \
        "ORRERY__DATABASE__DATA_DIR=$tmp/orrery_pg-data" "ORRERY__REDIS__URL=$redis_url" \
        "ORRERY__REDIS__NAMESPACE=$ns" -- "$bin"
      wait_ready "$name" "$api/ready" "$server_pid" 120
      measure "$name" "$api" "$server_pid" "$(pg_size "$db")"
      ;;
    orrery_sqlite)
      data="${reuse[$name]:-$tmp/orrery_sqlite-data}"
      if [ -z "${reuse[$name]:-}" ] && [ "$keep" = 1 ]; then
        data=$(mktemp -d "${TMPDIR:-/tmp}/orrery-million-sqlite.XXXXXX")
        kept+=("$name=$data")
      fi
      mkdir -p "$data"
      ORRERY__DATABASE__DATA_DIR="$data" "$bin" migrate >"$tmp/orrery_sqlite-migrate.log" 2>&1
      [ -f "$data/orion.db" ] || die "orrery migrate made no $data/orion.db"
      load "$name" sqlite3 "$data/orion.db"
      start_server "$name" "ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__DATA_DIR=$data" \
        -- "$bin"
      wait_ready "$name" "$api/ready" "$server_pid" 120
      measure "$name" "$api" "$server_pid" "$(du -cb "$data"/*.db* | tail -1 | cut -f1)"
      ;;
  esac
  stop_server "$server_pid"
done

rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
report="$bench/results/$(date +%Y-%m-%d-%H%M%S)-million.md"
"$py" "$bench/million_report.py" "$tmp" "$runs" "$tasks" "$rev" "$servers" >"$report"
cat "$report"
log "report written to ${report#"$root/"}"
if [ "${#kept[@]}" -gt 0 ]; then
  log "kept the loaded data; reuse it with:"
  log "  MILLION_NOW=$now MILLION_REUSE=\"${kept[*]}\" MILLION_SERVERS=\"$servers\" bash bench/million.sh"
  log "  (drop the PostgreSQL databases and remove the directory when done)"
fi
