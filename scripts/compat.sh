#!/usr/bin/env bash
# Compatibility suite: runs the unmodified prefect==3.9.1 client (tests/compat, pytest) against
# an Orrery binary that this script starts on a free port with a fresh data directory.
#
#   ORRERY_BIN                    the binary to test (default target/release/orrery)
#   ORRERY_CACHE                  where the client virtualenv lives (default ~/.cache/orrery)
#   ORRERY_COMPAT_DATABASE_URL    optional PostgreSQL admin URL: a fresh database is created
#                                 for the run and dropped afterwards
#   ORRERY_COMPAT_REDIS_URL       optional Redis URL (a random namespace is used)
#   extra arguments               passed to pytest (e.g. -k subflow -x)
#
# Exits with pytest's status. Prints the server log when the suite fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PREFECT_VERSION=3.9.1
# The Kubernetes worker, for `prefect worker start -t kubernetes` (tests/compat/test_collections.py).
PREFECT_KUBERNETES_VERSION=0.8.0
cache="${ORRERY_CACHE:-$HOME/.cache/orrery}"
venv="$cache/venv-prefect-$PREFECT_VERSION"
bin="${ORRERY_BIN:-target/release/orrery}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac

# --- the client virtualenv -------------------------------------------------------------------
ensure_venv() {
  if [ -x "$venv/bin/python" ] &&
     [ "$("$venv/bin/pip" show prefect 2>/dev/null | sed -n 's/^Version: //p')" = "$PREFECT_VERSION" ] &&
     "$venv/bin/python" -c 'import pytest, pytest_timeout, httpx, prefect_kubernetes' 2>/dev/null; then
    return
  fi
  local py
  py=$(command -v python3.11 || command -v python3 || true)
  if [ -z "$py" ]; then
    echo "compat: python3.11 is needed to build $venv" >&2
    exit 2
  fi
  echo "compat: creating $venv" >&2
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "prefect==$PREFECT_VERSION" "prefect-kubernetes==$PREFECT_KUBERNETES_VERSION" pytest pytest-timeout httpx
}
ensure_venv
if [ "${1:-}" = "--venv-only" ]; then
  echo "$venv"
  exit 0
fi

if [ ! -x "$bin" ]; then
  echo "compat: no orrery binary at $bin (build it, or set ORRERY_BIN)" >&2
  exit 2
fi

# --- a fresh server --------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-compat.XXXXXX")
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_log="$tmp/server.log"
server_pid=""
db_name=""
redis_ns=""

cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$db_name" ]; then
    psql "$ORRERY_COMPAT_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ -n "$redis_ns" ] && command -v redis-cli >/dev/null; then
    redis-cli -u "$ORRERY_COMPAT_REDIS_URL" --scan --pattern "$redis_ns:*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "$ORRERY_COMPAT_REDIS_URL" DEL >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

print_server_log() {
  echo "----- orrery server log ($server_log) -----" >&2
  cat "$server_log" >&2 || true
  echo "----- end of server log -----" >&2
}

server_env=(
  "ORRERY__SERVER__BIND=127.0.0.1:$port"
  "ORRERY__DATABASE__DATA_DIR=$tmp/data"
)
if [ -n "${ORRERY_COMPAT_DATABASE_URL:-}" ]; then
  db_name="orrery_compat_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  psql "$ORRERY_COMPAT_DATABASE_URL" -qc "CREATE DATABASE $db_name" >/dev/null
  # The same URL with the new database name as its path.
  db_url=$("$venv/bin/python" - "$ORRERY_COMPAT_DATABASE_URL" "$db_name" <<'EOF'
import sys
from urllib.parse import urlsplit, urlunsplit
u = urlsplit(sys.argv[1])
print(urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
EOF
)
  server_env+=("ORRERY__DATABASE__URL=$db_url")
fi
if [ -n "${ORRERY_COMPAT_REDIS_URL:-}" ]; then
  redis_ns="orrery-compat-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  server_env+=(
    "ORRERY__REDIS__URL=$ORRERY_COMPAT_REDIS_URL"
    "ORRERY__REDIS__NAMESPACE=$redis_ns"
  )
fi

mkdir -p "$tmp/data" "$tmp/prefect-home"
env "${server_env[@]}" "$bin" >"$server_log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 300); do
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/ready" || true)
  if [ "$code" = "200" ]; then ready=1; break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "compat: orrery did not become ready on 127.0.0.1:$port" >&2
  print_server_log
  exit 1
fi

# --- the suite ---------------------------------------------------------------------------------
export PREFECT_API_URL="http://127.0.0.1:$port/api"
export PREFECT_HOME="$tmp/prefect-home"
export ORRERY_URL="http://127.0.0.1:$port"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# Make sure no profile or ambient setting points the client elsewhere.
unset PREFECT_API_KEY PREFECT_PROFILE PREFECT_API_AUTH_STRING || true

set +e
"$venv/bin/python" -m pytest tests/compat -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
  print_server_log
fi
exit "$status"
