#!/usr/bin/env bash
# Orrery benchmarks, side by side with the open-source Prefect server, in one run.
#
#   bash bench/run.sh
#
# For each server in turn — reference Prefect on PostgreSQL, (optionally) reference Prefect on
# SQLite, Orrery on PostgreSQL + Redis, Orrery on SQLite — on a fresh database and a free port:
#   1. idle RSS a few seconds after it is ready
#   2. (a) flow-run lifecycle throughput with the compiled load generator (bench/loadgen)
#   3. (b) task-run recording lag of a real prefect flow with N mapped tasks
#   4. RSS after the runs
# and, each on its own fresh database (reference PG, Orrery PG, Orrery SQLite):
#   5. scheduler: N deployments with a 1-minute interval schedule, one scheduler cycle timed
#   6. poll: POST /work_pools/{p}/get_scheduled_flow_runs latency with 10,000 scheduled runs
# then writes bench/results/<date>.md and prints a table of ratios. See bench/README.md.
#
# Knobs (environment):
#   ORRERY_BIN           Orrery binary (default target/release/orrery; built if missing)
#   BENCH_ORRERY_REV     what to call that binary in the report (default: the work tree's commit,
#                        "+ uncommitted changes" when src/ differs from it)
#   ORRERY_CACHE         where the prefect client virtualenv lives (default ~/.cache/orrery)
#   BENCH_PG_URL         PostgreSQL admin URL (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_REDIS_URL      Redis URL (default redis://127.0.0.1:6379)
#   BENCH_CLIENTS        lifecycle clients (default 16)
#   BENCH_DURATION       measured lifecycle time (default 20s); BENCH_WARMUP (default 2s)
#   BENCH_TASKS          mapped tasks in the flow (default 1000)
#   BENCH_REF_SQLITE     1 (default) also runs the reference on SQLite with 2 clients; 0 skips it
#   BENCH_ONLY           space-separated servers and/or benches: ref_pg ref_sqlite orrery_pg
#                        orrery_sqlite / lifecycle scheduler poll. Unset: everything. Set without a
#                        bench name: lifecycle only; without a server name: every server.
#                        (lifecycle = (a)-(c) above; ref_sqlite only ever runs lifecycle.)
#   BENCH_SCHED_DEPLOYMENTS  deployments for the scheduler bench (default 1000)
#   BENCH_SCHED_CAP      longest wait for a scheduler cycle to finish (default 600 s)
#   BENCH_POLL_DURATION  measured time per get_scheduled_flow_runs case (default 15s)
#   BENCH_KEEP           1 keeps the temporary directory (server logs, raw JSON)
#   BENCH_WAIT_IDLE      seconds to wait, before each measurement, for no cargo/rustc to be running
#                        on the machine (default 0: don't wait; contention is noted in the report)
#   BENCH_NICE           niceness for the servers, the load generator and the client (default 0; e.g.
#                        -10 as root so a concurrent compile disturbs the run less; PostgreSQL keeps its own)
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
clients="${BENCH_CLIENTS:-16}"
duration="${BENCH_DURATION:-20s}"
warmup="${BENCH_WARMUP:-2s}"
tasks="${BENCH_TASKS:-1000}"
ref_sqlite="${BENCH_REF_SQLITE:-1}"
all_servers="ref_pg ref_sqlite orrery_pg orrery_sqlite"
all_benches="lifecycle scheduler poll"
only_servers="" only_benches=""
for w in ${BENCH_ONLY:-$all_servers $all_benches}; do
  case " $all_servers " in *" $w "*) only_servers+=" $w"; continue ;; esac
  case " $all_benches " in *" $w "*) only_benches+=" $w"; continue ;; esac
  printf 'BENCH_ONLY: unknown word %s (servers: %s; benches: %s)\n' "$w" "$all_servers" "$all_benches" >&2
  exit 2
done
only="${only_servers:-$all_servers}"
benches="${only_benches:-lifecycle}"
sched_n="${BENCH_SCHED_DEPLOYMENTS:-1000}"
sched_cap="${BENCH_SCHED_CAP:-600}"
poll_duration="${BENCH_POLL_DURATION:-15s}"
nice_n="${BENCH_NICE:-0}"
settle=5   # seconds between "ready" and the idle RSS sample

# shellcheck source=bench/lib.sh
source "$bench/lib.sh"


# --- prerequisites ------------------------------------------------------------------------------
[ -x "$py" ] || "$root/scripts/compat.sh" --venv-only >/dev/null
[ -x "$py" ] || die "no prefect virtualenv at $venv"
command -v psql >/dev/null || die "psql is needed"
command -v curl >/dev/null || die "curl is needed"

log "building the load generator (bench/target)"
CARGO_TARGET_DIR="$bench/target" cargo build --quiet --release --manifest-path "$bench/loadgen/Cargo.toml"
loadgen="$bench/target/release/orrery-loadgen"
if [ ! -x "$bin" ]; then
  log "no Orrery binary at $bin: building it (cargo build --release)"
  cargo build --quiet --release
fi
[ -x "$bin" ] || die "no Orrery binary at $bin"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-bench.XXXXXX")
out="$tmp/results"
mkdir -p "$out"
notes="$tmp/notes.txt"
: >"$notes"
note() { log "note: $*"; printf '%s\n' "$*" >>"$notes"; }

tree_pids() {  # pid and all its descendants
  local all
  all=$(ps -e -o pid=,ppid=)
  local queue=("$1") seen=()
  while [ "${#queue[@]}" -gt 0 ]; do
    local p=${queue[0]}
    queue=("${queue[@]:1}")
    seen+=("$p")
    while read -r c pp; do
      [ "$pp" = "$p" ] && queue+=("$c")
    done <<<"$all"
  done
  echo "${seen[@]}"
}

rss_json() {  # VmRSS, RssAnon, RssFile, RssShmem of pid and its descendants, summed, in kB, as JSON
  local p
  # shellcheck disable=SC2046
  awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {k[$1] += $2}
       END {printf "{\"rss_kb\": %d, \"anon_kb\": %d, \"file_kb\": %d, \"shmem_kb\": %d}",
            k["VmRSS:"], k["RssAnon:"], k["RssFile:"], k["RssShmem:"]}' \
    $(for p in $(tree_pids "$1"); do [ -r "/proc/$p/status" ] && echo "/proc/$p/status"; done) 2>/dev/null ||
    echo '{"rss_kb": 0}'
}

clk_tck=$(getconf CLK_TCK)
declare -A cpu_before=()

cpu_sample() {  # pids... -> "pid ticks" lines (utime+stime, all threads; fields after the comm)
  local p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    echo "$p $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')"
  done
}

db_backends() {  # db -> pids of the PostgreSQL backends connected to it
  [ -n "$1" ] || return 0
  psql "$pg_admin" -qAtc "SELECT pid FROM pg_stat_activity WHERE datname = '$1'" 2>/dev/null || true
}

cpu_start() {  # server_pid db
  cpu_before=()
  local p t
  while read -r p t; do [ -n "$p" ] && cpu_before[$p]=$t; done < <(cpu_sample $(tree_pids "$1") $(db_backends "$2"))
  cpu_server_before=$(cpu_sample $(tree_pids "$1") | awk '{s += $2} END {print s + 0}')
}

cpu_stop() {  # server_pid db -> JSON of CPU seconds used since cpu_start by the server and its DB backends
  local server_now db_ticks=0 p t
  server_now=$(cpu_sample $(tree_pids "$1") | awk '{s += $2} END {print s + 0}')
  while read -r p t; do
    [ -n "$p" ] || continue
    db_ticks=$((db_ticks + t - ${cpu_before[$p]:-0}))
  done < <(cpu_sample $(db_backends "$2"))
  "$py" -c 'import sys; t = int(sys.argv[3]); print("{\"server_s\": %.2f, \"db_s\": %.2f}" % ((int(sys.argv[1]) - int(sys.argv[2])) / t, int(sys.argv[4]) / t))' \
    "$server_now" "$cpu_server_before" "$clk_tck" "$db_ticks"
}

compiling() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; }

busy_builds() {  # waits (BENCH_WAIT_IDLE) for, then notes, a concurrent compiler, which would skew ratios
  local deadline=$((SECONDS + ${BENCH_WAIT_IDLE:-0}))
  if compiling && [ "$SECONDS" -lt "$deadline" ]; then
    log "$1: waiting up to $((deadline - SECONDS)) s for cargo/rustc on this machine to finish"
    while compiling && [ "$SECONDS" -lt "$deadline" ]; do sleep 2; done
  fi
  if compiling; then
    note "$1: a cargo/rustc process was running on this machine (CPU contention; load average $(cut -d' ' -f1-3 /proc/loadavg))"
  fi
}

to_secs() {  # "20s" / "500ms" / "2m" / "3" -> whole seconds, rounded up
  "$py" -c 'import sys,math; s=sys.argv[1]
m={"ms":0.001,"s":1,"m":60}
for k in ("ms","s","m"):
    if s.endswith(k): print(math.ceil(float(s[:-len(k)])*m[k])); break
else: print(math.ceil(float(s)))' "$1"
}

client_env() {  # api_url name -> env for the prefect client
  echo "PREFECT_API_URL=$1" "PREFECT_HOME=$tmp/client-home-$2" "PREFECT_SERVER_ANALYTICS_ENABLED=false"
}

# suite name api_url pid lifecycle_clients with_tasks db
suite() {
  local name=$1 api=$2 pid=$3 nclients=$4 with_tasks=$5 db=${6:-}
  local lc_timeout=$(( $(to_secs "$duration") + $(to_secs "$warmup") + 90 ))
  sleep "$settle"
  local idle
  idle=$(rss_json "$pid")
  log "$name: idle $idle"

  busy_builds "$name lifecycle"
  log "$name: lifecycle, $nclients clients, $duration (+$warmup warm-up)"
  cpu_start "$pid" "$db"
  if ! timeout "$lc_timeout" nice -n "$nice_n" "$loadgen" lifecycle --url "$api" --clients "$nclients" \
        --duration "$duration" --warmup "$warmup" >"$out/$name.lifecycle.json" 2>"$tmp/$name.loadgen.err"; then
    note "$name: the load generator failed: $(tail -c 400 "$tmp/$name.loadgen.err" | tr '\n' ' ')"
    rm -f "$out/$name.lifecycle.json"
  else
    log "$name: $(cut -c1-300 "$out/$name.lifecycle.json")"
  fi
  cpu_stop "$pid" "$db" >"$out/$name.cpu.json"
  log "$name: CPU used during the lifecycle run $(cat "$out/$name.cpu.json")"

  if [ "$with_tasks" = 1 ]; then
    busy_builds "$name task flow"
    log "$name: flow with $tasks mapped tasks"
    local flow_json="$out/$name.taskflow.json" cpid poller crc=0 prc=0 exit_epoch
    local run_name="bench-$name-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    # The poller starts first and polls for the run by name, so the lag is measured from the
    # flow run's end_time even while the client is still sending its last events as it exits.
    timeout -k 10 900 nice -n "$nice_n" "$loadgen" task-lag --url "$api" --flow-run-name "$run_name" \
      --expect "$tasks" --ended-file "$flow_json" --interval 50ms --cap 120s --start-cap 600s \
      >"$out/$name.tasklag.json" &
    poller=$!
    # shellcheck disable=SC2046
    env -u PREFECT_API_KEY -u PREFECT_PROFILE -u PREFECT_API_AUTH_STRING $(client_env "$api" "$name") \
      timeout -k 10 300 nice -n "$nice_n" "$py" "$bench/taskflow.py" "$tasks" "$flow_json" "$run_name" \
      >"$tmp/$name.taskflow.log" 2>&1 &
    cpid=$!
    bg_pids=("$poller" "$cpid")
    wait "$cpid" || crc=$?
    exit_epoch=$(date +%s.%N)
    printf '{"exit_epoch": %s, "rc": %s}\n' "$exit_epoch" "$crc" >"$out/$name.clientexit.json"
    if [ "$crc" -ne 0 ] || [ ! -s "$flow_json" ]; then
      note "$name: the task flow client exited with $crc: $(tail -n 5 "$tmp/$name.taskflow.log" | tr '\n' ' ' | cut -c1-500)"
      kill "$poller" 2>/dev/null || true
    else
      log "$name: $(cat "$flow_json"); client exited; waiting for the poller"
    fi
    wait "$poller" || prc=$?
    bg_pids=()
    [ "$prc" -eq 0 ] || note "$name: the task-lag poller exited with $prc"
    log "$name: $(cat "$out/$name.tasklag.json" 2>/dev/null || true)"
    if grep -q "Still processing items" "$tmp/$name.taskflow.log"; then
      note "$name: at exit the client was still sending events: $(grep "Still processing items" "$tmp/$name.taskflow.log" | head -n 3 | sed 's/.*EventsWorker - //' | tr '\n' ' ')"
    fi
  fi

  sleep 2
  local after
  after=$(rss_json "$pid")
  log "$name: after the runs $after"
  printf '{"idle": %s, "after": %s, "pids": "%s"}\n' "$idle" "$after" "$(tree_pids "$pid")" >"$out/$name.rss.json"

  if grep -qiE 'panicked|ERROR' "$tmp/$name.log"; then
    note "$name: server log has $(grep -ciE 'panicked|ERROR' "$tmp/$name.log") ERROR/panic lines, e.g. $(grep -iE 'panicked|ERROR' "$tmp/$name.log" | head -n 2 | cut -c1-300 | tr '\n' ' ')"
  fi
}

wants() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
bench_on() { case " $benches " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- reference: prefect server start -------------------------------------------------------------
run_ref() {  # name db_url nclients with_tasks [db]
  local name=$1 dburl=$2 nclients=$3 with_tasks=$4 dbname=${5:-} port
  port=$(free_port)
  mkdir -p "$tmp/$name-home"
  log "$name: starting prefect server on 127.0.0.1:$port"
  start_server "$name" \
    "PREFECT_HOME=$tmp/$name-home" \
    "PREFECT_API_DATABASE_CONNECTION_URL=$dburl" \
    "PREFECT_SERVER_ANALYTICS_ENABLED=false" \
    "PREFECT_SERVER_API_HOST=127.0.0.1" \
    "PREFECT_SERVER_API_PORT=$port" \
    -- "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port"
  local pid=$server_pid
  wait_ready "$name" "http://127.0.0.1:$port/api/health" "$pid" 180
  log "$name: ready (pid $pid)"
  suite "$name" "http://127.0.0.1:$port/api" "$pid" "$nclients" "$with_tasks" "$dbname"
  stop_server "$pid"
}

# --- Orrery ----------------------------------------------------------------------------------------
run_orrery() {  # name with_pg
  local name=$1 with_pg=$2 port db=""
  port=$(free_port)
  mkdir -p "$tmp/$name-data"
  local envs=("ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__DATA_DIR=$tmp/$name-data")
  if [ "$with_pg" = 1 ]; then
    local ns
    new_db orrery
    ns="orrery-bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    redis_nss+=("$ns")
    envs+=("ORRERY__DATABASE__URL=$(db_url postgres "$db")" "ORRERY__REDIS__URL=$redis_url" "ORRERY__REDIS__NAMESPACE=$ns")
  fi
  log "$name: starting Orrery on 127.0.0.1:$port"
  start_server "$name" "${envs[@]}" -- "$bin"
  local pid=$server_pid
  wait_ready "$name" "http://127.0.0.1:$port/api/ready" "$pid" 120
  log "$name: ready (pid $pid)"
  suite "$name" "http://127.0.0.1:$port/api" "$pid" "$clients" 1 "$db"
  stop_server "$pid"
}

# --- scheduler and get_scheduled_flow_runs benches -------------------------------------------------
# Every service of the reference except its scheduler(s), by setting name.
ref_other_services="CANCELLATION_CLEANUP DB_VACUUM EVENT_PERSISTER EVENT_LOGGER FOREMAN LATE_RUNS PAUSE_EXPIRATIONS REPOSSESSOR CLEANUP_RECONCILER TASK_RUN_RECORDER TRIGGERS"
orrery_other_services="REPOSSESSOR PAUSE_EXPIRATIONS LATE_RUNS FOREMAN CANCELLATION_CLEANUP"

# start_for name kind phase -> starts the server of `kind` (ref_pg, orrery_pg, orrery_sqlite) on the
# database/data dir prepared for `name`; phase "quiet" = no scheduler, "sched" = only the scheduler.
# Sets $server_pid and $api.
start_for() {
  local name=$1 kind=$2 phase=$3 port envs=()
  port=$(free_port)
  case $kind in
    ref_pg)
      mkdir -p "$tmp/$name-home"
      envs=("PREFECT_HOME=$tmp/$name-home" "PREFECT_API_DATABASE_CONNECTION_URL=$(db_url postgresql+asyncpg "$bdb")"
            "PREFECT_SERVER_ANALYTICS_ENABLED=false" "PREFECT_SERVER_API_HOST=127.0.0.1" "PREFECT_SERVER_API_PORT=$port"
            "PREFECT_SERVER_LOGGING_LEVEL=INFO")
      local s
      for s in $ref_other_services; do envs+=("PREFECT_SERVER_SERVICES_${s}_ENABLED=false"); done
      if [ "$phase" = quiet ]; then envs+=("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=false"); fi
      start_server "$name.$phase" "${envs[@]}" -- "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port"
      api="http://127.0.0.1:$port/api"
      wait_ready "$name.$phase" "$api/health" "$server_pid" 180
      ;;
    orrery_*)
      mkdir -p "$tmp/$name-data"
      envs=("ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__DATA_DIR=$tmp/$name-data")
      if [ "$kind" = orrery_pg ]; then
        envs+=("ORRERY__DATABASE__URL=$(db_url postgres "$bdb")" "ORRERY__REDIS__URL=$redis_url" "ORRERY__REDIS__NAMESPACE=$bns")
      fi
      local s
      for s in $orrery_other_services; do envs+=("ORRERY__SERVICES__${s}_INTERVAL_MS=0"); done
      if [ "$phase" = quiet ]; then
        envs+=("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS=0" "ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS=0")
      fi
      start_server "$name.$phase" "${envs[@]}" -- "$bin"
      api="http://127.0.0.1:$port/api"
      wait_ready "$name.$phase" "$api/ready" "$server_pid" 120
      ;;
  esac
}

fresh_store() {  # name kind -> $bdb (fresh PG database or empty) and $bns (Redis namespace)
  bdb="" bns=""
  case $2 in
    ref_pg) new_db "$1"; bdb=$db ;;
    orrery_pg)
      new_db "$1"; bdb=$db
      bns="orrery-bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      redis_nss+=("$bns")
      ;;
  esac
}

pg_writes() {  # db -> {"ins": n, "upd": n, "del": n} over its user tables (cumulative statistics)
  [ -n "$1" ] || { echo null; return; }
  psql "$(db_url postgres "$1")" -qAtc "SELECT json_build_object('ins', coalesce(sum(n_tup_ins),0), 'upd', coalesce(sum(n_tup_upd),0), 'del', coalesce(sum(n_tup_del),0)) FROM pg_stat_user_tables" 2>/dev/null || echo null
}

# Scheduler: create the deployments with the scheduler off, restart with only the scheduler on,
# and watch SCHEDULED runs appear until the count has settled.
run_sched() {  # kind
  local kind=$1 name="sched_$1" pid watch_pid w0 w1
  fresh_store "$name" "$kind"
  busy_builds "$name setup"
  start_for "$name" "$kind" quiet
  log "$name: creating $sched_n deployments with a 1-minute interval schedule (scheduler off)"
  if ! timeout 1800 nice -n "$nice_n" "$loadgen" sched-setup --url "$api" --deployments "$sched_n" --interval 60 \
        >"$out/$name.setup.json" 2>"$tmp/$name.setup.err"; then
    note "$name: setup failed: $(tail -c 400 "$tmp/$name.setup.err" | tr '\n' ' ')"
    stop_server "$server_pid"; return 0
  fi
  log "$name: $(cat "$out/$name.setup.json")"
  stop_server "$server_pid"
  # Past every "recently updated" window (reference 6 s, Orrery 10 s): the cycle timed is the
  # main scheduler's.
  sleep 11
  busy_builds "$name cycle"
  w0=$(pg_writes "$bdb")
  # 61 runs per deployment are expected (one a minute for an hour, the first one and the one at
  # or past now + 1 h included); the cycle is done when the count first reaches that. The watcher
  # then waits until the count has not moved for 5 s.
  log "$name: starting the server with only its scheduler on; watching SCHEDULED runs appear"
  local t_launch; t_launch=$(date +%s.%N)
  start_for "$name" "$kind" sched
  pid=$server_pid
  local t_ready; t_ready=$(date +%s.%N)
  cpu_start "$pid" "$bdb"
  timeout $((sched_cap + 60)) nice -n "$nice_n" "$loadgen" sched-watch --url "$api" --expect $((sched_n * 61)) \
    --interval 200ms --quiet 5s --cap "${sched_cap}s" >"$out/$name.watch.json" 2>"$tmp/$name.watch.err" ||
    note "$name: the watcher failed: $(tail -c 300 "$tmp/$name.watch.err" | tr '\n' ' ')"
  cpu_stop "$pid" "$bdb" >"$out/$name.cpu.json"
  sleep 3   # PostgreSQL flushes a backend's table statistics within a second or so of going idle
  w1=$(pg_writes "$bdb")
  local selflog="null"
  if [ "$kind" != ref_pg ]; then
    # Orrery logs each pass that created runs, with its own elapsed time.
    selflog=$(grep -m1 'scheduled flow runs' "$tmp/$name.sched.log" | grep -v 'recent=true' | sed 's/\x1b\[[0-9;]*m//g' | tr -d '"\\' | cut -c1-300 | "$py" -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')
  else
    selflog=$(grep -E -m3 'Scheduled [1-9][0-9]* runs' "$tmp/$name.sched.log" | cut -c1-200 | "$py" -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')
  fi
  printf '{"launch_epoch": %s, "ready_epoch": %s, "writes_before": %s, "writes_after": %s, "server_log": %s, "rss": %s}\n' \
    "$t_launch" "$t_ready" "$w0" "$w1" "$selflog" "$(rss_json "$pid")" >"$out/$name.meta.json"
  log "$name: $(cut -c1-400 "$out/$name.watch.json")"
  stop_server "$pid"
}

# get_scheduled_flow_runs: 10 queues × 1,000 runs, two hours ahead; one client polls back to back.
run_poll() {  # kind
  local kind=$1 name="poll_$1" anchor
  fresh_store "$name" "$kind"
  start_for "$name" "$kind" quiet
  log "$name: creating 10 queues × 1,000 scheduled runs (POST /deployments/{id}/schedule)"
  if ! timeout 1800 nice -n "$nice_n" "$loadgen" poll-setup --url "$api" --queues 10 --runs-per-queue 1000 \
        >"$out/$name.setup.json" 2>"$tmp/$name.setup.err"; then
    note "$name: setup failed: $(tail -c 400 "$tmp/$name.setup.err" | tr '\n' ' ')"
    stop_server "$server_pid"; return 0
  fi
  log "$name: $(cat "$out/$name.setup.json")"
  anchor=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["anchor_epoch"])' "$out/$name.setup.json")
  busy_builds "$name"
  # "due": the first 10 s of runs are due (100 runs in the answer, 10 per queue; under both
  # servers' default limit);
  # "empty": a worker's usual poll (now + 10 s), nothing due yet.
  timeout 600 nice -n "$nice_n" "$loadgen" poll --url "$api" --before "$((anchor + 9)).5" --expect 100 \
    --duration "$poll_duration" >"$out/$name.due.json" 2>"$tmp/$name.poll.err" ||
    note "$name: poll (due) failed: $(tail -c 300 "$tmp/$name.poll.err" | tr '\n' ' ')"
  log "$name: due: $(cut -c1-400 "$out/$name.due.json")"
  timeout 600 nice -n "$nice_n" "$loadgen" poll --url "$api" --before "$(( $(date +%s) + 10 )).0" --expect 0 \
    --duration "$poll_duration" >"$out/$name.empty.json" 2>"$tmp/$name.poll.err" ||
    note "$name: poll (empty) failed: $(tail -c 300 "$tmp/$name.poll.err" | tr '\n' ' ')"
  log "$name: empty: $(cut -c1-400 "$out/$name.empty.json")"
  stop_server "$server_pid"
}

started=$SECONDS
if bench_on lifecycle; then
  if wants ref_pg; then
    new_db ref
    run_ref ref_pg "$(db_url postgresql+asyncpg "$db")" "$clients" 1 "$db"
  fi
  if wants ref_sqlite && [ "$ref_sqlite" = 1 ]; then
    run_ref ref_sqlite "sqlite+aiosqlite:///$tmp/ref_sqlite-home/prefect.db" 2 0
  fi
  if wants orrery_pg; then run_orrery orrery_pg 1; fi
  if wants orrery_sqlite; then run_orrery orrery_sqlite 0; fi
fi
for b in scheduler poll; do
  bench_on "$b" || continue
  for k in ref_pg orrery_pg orrery_sqlite; do
    wants "$k" || continue
    case $b in scheduler) run_sched "$k" ;; poll) run_poll "$k" ;; esac
  done
done
log "all runs done in $((SECONDS - started)) s"

# --- report ----------------------------------------------------------------------------------------
date_s=$(date -u +%Y-%m-%d)
report="$bench/results/$date_s.md"
[ -e "$report" ] && report="$bench/results/$date_s-$(date -u +%H%M%S).md"
mkdir -p "$bench/results"
dirty=""
git -C "$root" diff --quiet HEAD -- src migrations Cargo.toml Cargo.lock 2>/dev/null || dirty=" + uncommitted changes in src/"
"$py" - "$out/meta.json" "$notes" <<EOF
import json, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split(":", 1)[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
kb = int(mem.split()[0]) if mem != "?" else 0
meta = {
    "date": sh("date -u '+%Y-%m-%d %H:%M UTC'"),
    "cpu": cpu, "nproc": sh("nproc"), "mem": f"{kb / 1048576:.1f} GiB" if kb else "?",
    "orrery_rev": "${BENCH_ORRERY_REV:-}" or (sh("git -C '$root' rev-parse --short HEAD") + "$dirty"),
    "orrery_bin_sha256": sh("sha256sum '$bin' | cut -c1-12"),
    "orrery_bin": "$bin",
    "prefect_version": sh("'$py' -c 'import prefect; print(prefect.__version__)'"),
    "pg_version": sh("psql '$pg_admin' -qAtc 'SHOW server_version'"),
    "redis_version": sh("redis-cli -u '$redis_url' INFO server | sed -n 's/^redis_version://p' | tr -d '\r'"),
    "duration": "$duration", "warmup": "$warmup", "tasks": int("$tasks"), "nice": "$nice_n",
    "notes": [l.rstrip() for l in open(sys.argv[2]) if l.strip()],
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
echo
"$py" "$bench/report.py" "$out" "$report"
echo
log "report written to ${report#"$root/"}"
