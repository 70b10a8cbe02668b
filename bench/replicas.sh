#!/usr/bin/env bash
# One Orrery against several: lifecycle throughput of 1 replica and of N replicas sharing one
# PostgreSQL database and one Redis namespace, the same clients spread over them, interleaved
# (1, N, N, 1, ...) so the machine's drift hits both alike.
#
#   bash bench/replicas.sh
#
# Knobs (environment):
#   REPLICAS         replicas in the second setup (default 3)
#   REPLICA_ROUNDS   rounds of (1, N) (default 2; each round runs both, in alternating order)
#   BENCH_CLIENTS    lifecycle clients (default 12), BENCH_DURATION (default 20s), BENCH_WARMUP (2s)
#   ORRERY_BIN, BENCH_PG_URL, BENCH_REDIS_URL, ORRERY_CACHE, BENCH_KEEP, BENCH_NICE as for run.sh
#   REPLICA_ENV      extra settings for every replica, e.g. "ORRERY__DATABASE__POOL_SIZE=4"
#   REPLICA_ENV_N    extra settings for the replicas of the N-replica setup only, e.g.
#                    "ORRERY__SERVER__WORKERS=1 TOKIO_WORKER_THREADS=1" (N processes sharing the
#                    cores of one machine, each sized for its share)
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
replicas="${REPLICAS:-3}"
rounds="${REPLICA_ROUNDS:-2}"
clients="${BENCH_CLIENTS:-12}"
duration="${BENCH_DURATION:-20s}"
warmup="${BENCH_WARMUP:-2s}"
nice_n="${BENCH_NICE:-0}"
read -r -a extra <<<"${REPLICA_ENV:-}"
read -r -a extra_n <<<"${REPLICA_ENV_N:-}"

# shellcheck source=bench/lib.sh
source "$bench/lib.sh"

[ -x "$py" ] || "$root/scripts/compat.sh" --venv-only >/dev/null
[ -x "$py" ] || die "no prefect virtualenv at $venv"
command -v psql >/dev/null || die "psql is needed"
log "building the load generator (bench/target)"
CARGO_TARGET_DIR="$bench/target" cargo build --quiet --release --manifest-path "$bench/loadgen/Cargo.toml"
loadgen="$bench/target/release/orrery-loadgen"
[ -x "$bin" ] || cargo build --quiet --release
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-replicas.XXXXXX")

ticks_of() {  # pids... -> utime+stime clock ticks summed over the pids and their threads
  local t=0 p f
  for p in "$@"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${f% *} + ${f#* }))
  done
  echo "$t"
}

cpu_ticks() {  # server pids... -> "orrery postgres redis" clock ticks so far
  echo "$(ticks_of "$@") $(ticks_of $(pgrep -x postgres)) $(ticks_of $(pgrep -x redis-server))"
}

# n -> prints "n lifecycles/s errors p99_ms cpu_ms_per_lifecycle(orrery postgres redis)"
run() {
  local n=$1 urls=() pids=() url ns port i more=()
  [ "$n" = 1 ] || more=("${extra_n[@]}")
  new_db replicas
  url=$(db_url postgres "$db")
  ns="orrery-replicas-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  redis_nss+=("$ns")
  ORRERY__DATABASE__URL="$url" "$bin" migrate >"$tmp/migrate.log" 2>&1
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    start_server "r$n-$i" "ORRERY__SERVER__BIND=127.0.0.1:$port" "ORRERY__DATABASE__URL=$url" \
      "ORRERY__DATABASE__DATA_DIR=$tmp/data-$n-$i" "ORRERY__REDIS__URL=$redis_url" \
      "ORRERY__REDIS__NAMESPACE=$ns" "${extra[@]}" "${more[@]}" -- "$bin"
    pids+=("$server_pid")
    urls+=("http://127.0.0.1:$port/api")
  done
  for i in $(seq 1 "$n"); do
    wait_ready "r$n-$i" "${urls[$((i - 1))]%/api}/api/ready" "${pids[$((i - 1))]}" 120
  done
  local joined out before after
  joined=$(IFS=,; echo "${urls[*]}")
  out="$tmp/run-$n-$RANDOM.json"
  before=$(cpu_ticks "${pids[@]}")
  nice -n "$nice_n" "$loadgen" lifecycle --url "$joined" --clients "$clients" --duration "$duration" \
    --warmup "$warmup" >"$out"
  after=$(cpu_ticks "${pids[@]}")
  "$py" -c 'import json,sys; d=json.load(open(sys.argv[2]))
b, a = [list(map(int, x.split())) for x in sys.argv[3:5]]
n = max(d["lifecycles_total"], 1); hz = 100
cpu = [(y - x) * 1000 / hz / n for x, y in zip(b, a)]
print(sys.argv[1], d["lifecycles_per_s"], d["errors"], d["set_state_ms"]["p99"], *(f"{c:.2f}" for c in cpu))' \
    "$n" "$out" "$before" "$after"
  for p in "${pids[@]}"; do stop_server "$p"; done
}

results="$tmp/results.txt"
: >"$results"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="1 $replicas"; else order="$replicas 1"; fi
  for n in $order; do
    log "round $r: $n replica(s), $clients clients"
    run "$n" | tee -a "$results"
  done
done
"$py" - "$results" <<'EOF'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for n in sorted({r[0] for r in rows}, key=int):
    v = [float(r[1]) for r in rows if r[0] == n]
    e = sum(int(r[2]) for r in rows if r[0] == n)
    cpu = [statistics.mean(float(r[i]) for r in rows if r[0] == n) for i in (4, 5, 6)]
    print(f"{n} replica(s): {statistics.mean(v):.0f} lifecycles/s (runs: {', '.join(f'{x:.0f}' for x in v)}), "
          f"errors {e}; CPU ms per lifecycle: Orrery {cpu[0]:.2f}, PostgreSQL {cpu[1]:.2f}, Redis {cpu[2]:.2f}")
EOF
