#!/usr/bin/env bash
# Helpers shared by run.sh and million.sh, sourced after they set: py (the client virtualenv's
# python), pg_admin, redis_url, nice_n, and tmp (a scratch directory, made before any server starts).
# Servers started with start_server, databases made with new_db and Redis namespaces added to
# redis_nss are stopped, dropped and deleted by cleanup (installed as the EXIT trap here).

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- cleanup: every server we started, every database we created, every Redis key we wrote ------
server_pids=()
bg_pids=()   # the task-flow client and its poller, while they run
dbs=()
redis_nss=()

stop_server() {  # pid — the server leads its own process group (setsid), so the tree goes too
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  # stragglers of the group (e.g. uvicorn children) after their leader is gone
  pkill -KILL -g "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  # Each is a `timeout`, which leads its own process group: signal the group, then make sure
  # (the prefect client can outlive a SIGTERM while it finishes its flow).
  for pid in "${bg_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done
  for pid in "${bg_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null
  done
  for pid in "${server_pids[@]}"; do stop_server "$pid"; done
  for db in "${dbs[@]}"; do
    psql "$pg_admin" -qAtc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
  done
  if command -v redis-cli >/dev/null; then
    for ns in "${redis_nss[@]}"; do
      redis-cli -u "$redis_url" --scan --pattern "$ns:*" 2>/dev/null |
        xargs -r -n 500 redis-cli -u "$redis_url" DEL >/dev/null 2>&1
    done
  fi
  if [ -z "${tmp:-}" ]; then
    :
  elif [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    log "kept $tmp (server logs, raw JSON)"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -------------------------------------------------------------------------------------
free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

new_db() {  # sets $db to the name of a fresh PostgreSQL database, dropped at exit
  db="bench_$1_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  dbs+=("$db")   # not in a $(...) subshell: cleanup must see it
  psql "$pg_admin" -qAtc "CREATE DATABASE $db" >/dev/null
}

db_url() {  # scheme db -> the admin URL with another scheme and database name
  "$py" - "$pg_admin" "$1" "$2" <<'EOF'
import sys
from urllib.parse import urlsplit, urlunsplit
u = urlsplit(sys.argv[1])
print(urlunsplit((sys.argv[2], u.netloc, "/" + sys.argv[3], u.query, u.fragment)))
EOF
}

wait_ready() {  # name url pid timeout_s
  local name=$1 url=$2 pid=$3 limit=$4 code
  local deadline=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$tmp/$name.log" >&2; die "$name exited during start"; }
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$url" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  tail -n 40 "$tmp/$name.log" >&2
  die "$name was not ready at $url after ${limit}s"
}

start_server() {  # name -- env assignments... -- command...  (sets $server_pid)
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  setsid nice -n "$nice_n" env "${envs[@]}" "$@" >"$tmp/$name.log" 2>&1 </dev/null &
  server_pid=$!
  server_pids+=("$server_pid")
}

