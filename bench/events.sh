#!/usr/bin/env bash
# The events query API with a week of history (GitHub issue 16): EVENTS_COUNT events over 7 days
# loaded into each server's own database (Orrery: bench/seed_events.rs through its storage layer;
# the reference: bench/events_reference_load.py, the same events, into its tables), then the four
# queries the UI and the client send timed on one kept-alive connection (bench/events_queries.py),
# then the ingest rate through `/events/in` until every event sent is queryable
# (bench/events_ingest.py --until-queryable), side by side, one report.
#
#   bash bench/events.sh                                    # reference PG, Orrery PG, Orrery SQLite
#   EVENTS_COUNT=20000000 EVENTS_SERVERS=orrery_pg bash bench/events.sh   # needs ~71 GB of disk
#
# Knobs (environment):
#   EVENTS_SERVERS   any of ref_pg ref_sqlite orrery_pg orrery_sqlite
#                    (default: ref_pg orrery_pg orrery_sqlite)
#   EVENTS_COUNT     events loaded (default 2000000), over EVENTS_DAYS days (default 7)
#   EVENTS_SECONDS   time per query (default 20), at most EVENTS_CALLS calls (default 100), at
#                    least 5; EVENTS_WARMUP calls before (default 3)
#   EVENTS_INGEST    events sent through /events/in, one measure per number listed (default
#                    "5000 20000"; the reference drops what exceeds its in-memory queue of 10,000),
#                    on EVENTS_SOCKETS sockets (4) each; 0 skips the ingest measure
#   EVENTS_NOW       the epoch the history ends at (default: now at start)
#   EVENTS_WAIT_IDLE seconds to wait, before the queries and before the ingest of each server, for
#                    no cargo/rustc to be running (default 0; a compiler running is noted anyway)
#   EVENTS_KEEP      1 keeps the loaded databases and prints how to reuse them
#   EVENTS_REUSE     "name=where ..." reuses kept data instead of loading: ref_pg=DB orrery_pg=DB
#                    ref_sqlite=FILE orrery_sqlite=DIR, with EVENTS_NOW and EVENTS_COUNT as printed
#   ORRERY_BIN       the Orrery binary (default target/release/orrery)
#   SEED_EVENTS_BIN  the generator (default target/release/examples/seed_events)
#   BENCH_PG_URL, BENCH_REDIS_URL, ORRERY_CACHE, BENCH_KEEP, BENCH_NICE as for run.sh
# Neither binary is built here (`cargo build --release --bin orrery --example seed_events`).
# Both servers keep events 30 days in this bench (the history ends at a fixed NOW, so a 7-day
# retention pass would start deleting its oldest events minutes after loading).
# Writes bench/results/<date>-events.md. See bench/README.md, "Events".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench="$root/bench"

PREFECT_VERSION=3.9.1
cache="${ORRERY_CACHE:-$HOME/.cache/orrery}"
venv="$cache/venv-prefect-$PREFECT_VERSION"
py="$venv/bin/python"
bin="${ORRERY_BIN:-target/release/orrery}"
seed="${SEED_EVENTS_BIN:-target/release/examples/seed_events}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
case "$seed" in /*) ;; *) seed="$root/$seed" ;; esac
pg_admin="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
redis_url="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
servers="${EVENTS_SERVERS:-ref_pg orrery_pg orrery_sqlite}"
count="${EVENTS_COUNT:-2000000}"
days="${EVENTS_DAYS:-7}"
seconds="${EVENTS_SECONDS:-20}"
calls="${EVENTS_CALLS:-100}"
warmup="${EVENTS_WARMUP:-3}"
ingest="${EVENTS_INGEST:-5000 20000}"
sockets="${EVENTS_SOCKETS:-4}"
keep="${EVENTS_KEEP:-0}"
wait_idle="${EVENTS_WAIT_IDLE:-0}"
nice_n="${BENCH_NICE:-0}"

# shellcheck source=bench/lib.sh
source "$bench/lib.sh"

for s in $servers; do
  case $s in ref_pg | ref_sqlite | orrery_pg | orrery_sqlite) ;; *) die "EVENTS_SERVERS: unknown server $s" ;; esac
done
[ -x "$py" ] || "$root/scripts/compat.sh" --venv-only >/dev/null
[ -x "$py" ] || die "no prefect virtualenv at $venv"
command -v psql >/dev/null || die "psql is needed"
command -v curl >/dev/null || die "curl is needed"
case " $servers " in *"_sqlite "*) command -v sqlite3 >/dev/null || die "sqlite3 is needed" ;; esac
case " $servers " in *" orrery_"*)
  [ -x "$bin" ] || die "no Orrery binary at $bin (cargo build --release --bin orrery)"
  [ -x "$seed" ] || die "no generator at $seed (cargo build --release --example seed_events)" ;;
esac

rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain -- src 2>/dev/null | head -1)" ] || rev="$rev + uncommitted changes in src/"
case " $servers " in *" orrery_"*)
  rev="$rev; binary $bin of $(date -r "$bin" '+%Y-%m-%d %H:%M')" ;;
esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-events.XXXXXX")
now="${EVENTS_NOW:-$(date +%s)}"
declare -A reuse=()
for kv in ${EVENTS_REUSE:-}; do reuse[${kv%%=*}]=${kv#*=}; done
[ "${#reuse[@]}" = 0 ] || [ -n "${EVENTS_NOW:-}" ] || die "EVENTS_REUSE needs EVENTS_NOW"
kept=()
meta="$tmp/meta.jsonl"
: >"$meta"
notes="$tmp/notes.txt"
: >"$notes"
# Both servers keep a month of events here (see the header).
ref_env=("PREFECT_SERVER_ANALYTICS_ENABLED=false" "PREFECT_SERVER_EVENTS_RETENTION_PERIOD=P30D")
orrery_env=("ORRERY__EVENTS__RETENTION_DAYS=30")

compiling() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; }
note_busy() {  # phase [wait]: waits (EVENTS_WAIT_IDLE) for, then notes, a concurrent compiler
  local deadline=$((SECONDS + ${2:-0}))
  if compiling && [ "$SECONDS" -lt "$deadline" ]; then
    log "$1: waiting up to $((deadline - SECONDS)) s for cargo/rustc on this machine to finish"
    while compiling && [ "$SECONDS" -lt "$deadline" ]; do sleep 2; done
  fi
  if compiling; then
    echo "$1: a cargo/rustc process was running (load average $(cut -d' ' -f1-3 /proc/loadavg))" >>"$notes"
    log "note: $1 with cargo/rustc running"
  fi
}
now_s() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

load() {  # name command... -> sets load_s
  local name=$1 t0
  shift
  if [ -n "${reuse[$name]:-}" ]; then
    log "$name: reusing ${reuse[$name]}"
    load_s=null
    return
  fi
  note_busy "$name load"
  log "$name: loading $count events over $days days"
  t0=$(now_s)
  "$@"
  load_s=$(since "$t0")
  log "$name: loaded in ${load_s} s"
}

analyze() {  # name pg_url -> VACUUM ANALYZE, what autovacuum does soon after a bulk load
  analyze_s=null
  wal_bytes=null
  [ -z "${reuse[$1]:-}" ] || return 0
  local t0
  t0=$(now_s)
  psql -q -v ON_ERROR_STOP=1 "$2" -c "VACUUM (ANALYZE)" >/dev/null
  analyze_s=$(since "$t0")
  log "$1: VACUUM (ANALYZE) in ${analyze_s} s"
}

checkpoint() {  # name sqlite_file -> the WAL copied into the database file and truncated, as the
  # server's checkpointer gets to soon after a bulk load (a loader that stops without closing its
  # connections leaves the WAL behind for the server to copy while it is being measured)
  local t0
  wal_bytes=$(stat -c %s "$2-wal" 2>/dev/null || echo 0)
  t0=$(now_s)
  sqlite3 "$2" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  analyze_s=$(since "$t0")
  log "$1: WAL of $wal_bytes bytes checkpointed (TRUNCATE) in ${analyze_s} s"
}

measure() {  # name api_url pid size_bytes
  local name=$1 api=$2 pid=$3 size=$4
  note_busy "$name queries" "$wait_idle"
  log "$name: timing the queries"
  "$py" "$bench/events_queries.py" "$api" "$count" "$days" "$now" "$seconds" "$calls" "$warmup" \
    >"$tmp/$name.json" 2>"$tmp/$name-queries.err" ||
    echo "$name: events_queries.py failed: $(tail -n 1 "$tmp/$name-queries.err")" >>"$notes"
  cat "$tmp/$name-queries.err" >&2
  if grep -q MISMATCH "$tmp/$name-queries.err"; then
    echo "$name: WRONG ANSWER (not what the loaded history defines), see the answers below" >>"$notes"
  fi
  local rss
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  local n
  for n in $ingest; do
    [ "$n" -gt 0 ] || continue
    note_busy "$name ingest" "$wait_idle"
    log "$name: sending $n events through /events/in until queryable"
    "$py" "$bench/events_ingest.py" "$api" "$n" "$sockets" --until-queryable 600 \
      --event "bench.ingest.$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" \
      >"$tmp/$name-ingest-$n.json" 2>"$tmp/$name-ingest-$n.err" ||
      echo "$name: events_ingest.py $n failed: $(tail -n 1 "$tmp/$name-ingest-$n.err")" >>"$notes"
    cat "$tmp/$name-ingest-$n.json" >&2
  done
  printf '{"server": "%s", "load_s": %s, "analyze_s": %s, "wal_bytes": %s, "size_bytes": %s, "rss_kb": %s}\n' \
    "$name" "$load_s" "$analyze_s" "$wal_bytes" "${size:-0}" "${rss:-0}" >>"$meta"
}

# The loaders, run by `load` (the rows of the same history).
load_ref_pg() {  # pg_url
  "$py" "$bench/events_reference_load.py" pg "$count" "$days" "$now" | psql -q -v ON_ERROR_STOP=1 "$1" >/dev/null
}
load_ref_sqlite() {  # file
  "$py" "$bench/events_reference_load.py" sqlite "$count" "$days" "$now" "$1"
}
seed_orrery() {  # log env... (the server's settings)
  local log_file=$1
  shift
  env "$@" "$seed" "$count" "$days" "$now" 2>"$log_file"
}

store_db() {  # name -> $db: the database to use (reused, kept or dropped at exit)
  if [ -n "${reuse[$1]:-}" ]; then
    db=${reuse[$1]}
  elif [ "$keep" = 1 ]; then
    db="events_$1_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    psql "$pg_admin" -qAtc "CREATE DATABASE $db" >/dev/null
    kept+=("$1=$db")
  else
    new_db "events_$1"
  fi
}

store_dir() {  # name -> $dir: a directory for SQLite files (reused, kept or removed at exit)
  if [ -n "${reuse[$1]:-}" ]; then
    dir=${reuse[$1]}
  elif [ "$keep" = 1 ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/orrery-events-$1.XXXXXX")
    kept+=("$1=$dir")
  else
    dir="$tmp/$1-data"
    mkdir -p "$dir"
  fi
}

pg_size() { psql "$(db_url postgres "$1")" -qAtc "SELECT pg_database_size(current_database())"; }
files_size() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }

for name in $servers; do
  port=$(free_port)
  api="http://127.0.0.1:$port/api"
  case $name in
    ref_pg)
      store_db "$name"
      url=$(db_url postgresql+asyncpg "$db")
      mkdir -p "$tmp/ref_pg-home"
      [ -n "${reuse[$name]:-}" ] || PREFECT_HOME="$tmp/ref_pg-home" PREFECT_API_DATABASE_CONNECTION_URL="$url" \
        "$venv/bin/prefect" server database upgrade -y >"$tmp/ref_pg-migrate.log" 2>&1
      load "$name" load_ref_pg "$(db_url postgres "$db")"
      analyze "$name" "$(db_url postgres "$db")"
      start_server "$name" "PREFECT_HOME=$tmp/ref_pg-home" "PREFECT_API_DATABASE_CONNECTION_URL=$url" \
        "${ref_env[@]}" "PREFECT_SERVER_API_HOST=127.0.0.1" "PREFECT_SERVER_API_PORT=$port" \
        -- "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port"
      wait_ready "$name" "$api/health" "$server_pid" 180
      measure "$name" "$api" "$server_pid" "$(pg_size "$db")"
      ;;
    ref_sqlite)
      if [ -n "${reuse[$name]:-}" ]; then
        file=${reuse[$name]}
      elif [ "$keep" = 1 ]; then
        file="$(mktemp -d "${TMPDIR:-/tmp}/orrery-events-$name.XXXXXX")/prefect.db"
        kept+=("$name=$file")
      else
        file="$tmp/ref_sqlite-data/prefect.db"
        mkdir -p "$tmp/ref_sqlite-data"
      fi
      url="sqlite+aiosqlite:///$file"
      mkdir -p "$tmp/ref_sqlite-home"
      [ -n "${reuse[$name]:-}" ] || PREFECT_HOME="$tmp/ref_sqlite-home" PREFECT_API_DATABASE_CONNECTION_URL="$url" \
        "$venv/bin/prefect" server database upgrade -y >"$tmp/ref_sqlite-migrate.log" 2>&1
      load "$name" load_ref_sqlite "$file"
      checkpoint "$name" "$file"
      start_server "$name" "PREFECT_HOME=$tmp/ref_sqlite-home" "PREFECT_API_DATABASE_CONNECTION_URL=$url" \
        "${ref_env[@]}" "PREFECT_SERVER_API_HOST=127.0.0.1" "PREFECT_SERVER_API_PORT=$port" \
        -- "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port"
      wait_ready "$name" "$api/health" "$server_pid" 180
      measure "$name" "$api" "$server_pid" "$(files_size "$file"*)"
      ;;
    orrery_pg)
      store_db "$name"
      url=$(db_url postgres "$db")
      ns="orrery-events-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      redis_nss+=("$ns")
      pg_env=("ORRERY__DATABASE__URL=$url" "ORRERY__DATABASE__DATA_DIR=$tmp/orrery_pg-data"
        "ORRERY__REDIS__URL=$redis_url" "ORRERY__REDIS__NAMESPACE=$ns")
      env "${pg_env[@]}" "$bin" migrate >"$tmp/orrery_pg-migrate.log" 2>&1
      load "$name" seed_orrery "$tmp/orrery_pg-seed.log" "${pg_env[@]}"
      analyze "$name" "$url"
      start_server "$name" "ORRERY__SERVER__BIND=127.0.0.1:$port" "${pg_env[@]}" "${orrery_env[@]}" -- "$bin"
      wait_ready "$name" "$api/ready" "$server_pid" 120
      measure "$name" "$api" "$server_pid" "$(pg_size "$db")"
      ;;
    orrery_sqlite)
      store_dir "$name"
      data=$dir
      ORRERY__DATABASE__DATA_DIR="$data" "$bin" migrate >"$tmp/orrery_sqlite-migrate.log" 2>&1
      load "$name" seed_orrery "$tmp/orrery_sqlite-seed.log" "ORRERY__DATABASE__DATA_DIR=$data"
      checkpoint "$name" "$data/events.db"
      start_server "$name" "ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__DATA_DIR=$data" \
        "${orrery_env[@]}" -- "$bin"
      wait_ready "$name" "$api/ready" "$server_pid" 120
      measure "$name" "$api" "$server_pid" "$(files_size "$data"/events.db*)"
      ;;
  esac
  stop_server "$server_pid"
done

report="$bench/results/$(date +%Y-%m-%d-%H%M%S)-events.md"
"$py" "$bench/events_report.py" "$tmp" "$count" "$days" "$now" "$rev" "$servers" >"$report"
cat "$report"
log "report written to ${report#"$root/"}"
grep -q "MISMATCH" "$report" && log "MISMATCH: the servers' answers differ, see the report"
if [ "${#kept[@]}" -gt 0 ]; then
  log "kept the loaded data; reuse it with:"
  log "  EVENTS_NOW=$now EVENTS_COUNT=$count EVENTS_DAYS=$days EVENTS_REUSE=\"${kept[*]}\" EVENTS_SERVERS=\"$servers\" bash bench/events.sh"
  log "  (drop the PostgreSQL databases and remove the directories when done)"
fi
