#!/usr/bin/env bash
# Browser test: Orrery's own UI (static/, embedded) and Prefect's own web UIs (the Vue one in
# prefect/server/ui and the React one in prefect/server/ui-v2, from the installed prefect==3.9.1
# wheel) served by Orrery through `ui.dir`, data seeded with the real client
# (tests/browser/seed.py). Orrery's pages are checked one by one (tests/browser/orrery.mjs: the
# seeded data shown, actions, injected markup inert, axe-core, phone width); Prefect's main pages
# are walked (tests/browser/walk.mjs) recording every API answer, then the React UI once more in
# the two-host layout (the page on app.orrery.test calling api.orrery.test). Fails on any API
# answer >= 400 other than the routes allowed below, on a page error, or on a page showing the
# UI's error. Screenshots and each walk's report.json stay in target/browser/{sqlite,postgres}/.
#
#   ORRERY_BIN                   the binary (default target/debug/orrery)
#   ORRERY_CACHE                 virtualenv and playwright-core cache (default ~/.cache/orrery)
#   ORRERY_BROWSER_DATABASE_URL  optional PostgreSQL admin URL (a fresh database per server)
#   ORRERY_BROWSER_REDIS_URL     optional Redis URL (a random namespace per server)
#   ORRERY_BROWSER_UIS           the UIs: "orrery" (the embedded one) and Prefect's UI folders
#                                (default "orrery ui ui-v2")
#   ORRERY_BROWSER_TWO_HOSTS     1 (default) to walk the React UI in the two-host layout too
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PLAYWRIGHT_VERSION=1.49.1
AXE_VERSION=4.10.2
cache="${ORRERY_CACHE:-$HOME/.cache/orrery}"
node_dir="$cache/node-playwright-core-$PLAYWRIGHT_VERSION"
bin="${ORRERY_BIN:-target/debug/orrery}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
out="$root/target/browser/$([ -n "${ORRERY_BROWSER_DATABASE_URL:-}" ] && echo postgres || echo sqlite)"
uis="${ORRERY_BROWSER_UIS:-orrery ui ui-v2}"

# Answers allowed to fail (the pages that call them may show the UI's error for that part):
# none today; add a route here only with the issue that will make it answer.
ALLOWED=()

log() { printf '[browser %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- what the test needs: the client, Chromium, playwright-core ----------------------------
venv=$("$root/scripts/compat.sh" --venv-only)
py="$venv/bin/python"
if ! command -v chromium >/dev/null; then
  log "installing Chromium (Debian's chromium package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ] ||
  ! grep -q "\"version\": \"$AXE_VERSION\"" "$node_dir/node_modules/axe-core/package.json" 2>/dev/null; then
  log "installing playwright-core $PLAYWRIGHT_VERSION and axe-core $AXE_VERSION into $node_dir"
  mkdir -p "$node_dir"
  (cd "$node_dir" && echo '{"private": true}' >package.json &&
    npm install --silent --no-audit --no-fund "playwright-core@$PLAYWRIGHT_VERSION" \
      "axe-core@$AXE_VERSION" >/dev/null)
fi
[ -x "$bin" ] || { echo "browser: no orrery binary at $bin" >&2; exit 2; }
ui_root=$("$py" -c 'import os, prefect; print(os.path.join(os.path.dirname(prefect.__file__), "server"))')

# --- servers -------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orrery-browser.XXXXXX")
server_pid=""
dbs=()
namespaces=()
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  local rc=$?
  stop_server
  for db in "${dbs[@]}"; do
    psql "$ORRERY_BROWSER_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  for ns in "${namespaces[@]}"; do
    redis-cli -u "$ORRERY_BROWSER_REDIS_URL" --scan --pattern "$ns:*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "$ORRERY_BROWSER_REDIS_URL" DEL >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# storage NAME -> the settings of a fresh store (SQLite dir, or a new database and namespace)
storage() {
  local name=$1
  echo "ORRERY__DATABASE__DATA_DIR=$tmp/$name"
  if [ -n "${ORRERY_BROWSER_DATABASE_URL:-}" ]; then
    local db="orrery_browser_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    psql "$ORRERY_BROWSER_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
    echo "$db" >>"$tmp/dbs"
    "$py" - "$ORRERY_BROWSER_DATABASE_URL" "$db" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit
u = urlsplit(sys.argv[1])
print("ORRERY__DATABASE__URL=" + urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
  fi
  if [ -n "${ORRERY_BROWSER_REDIS_URL:-}" ]; then
    local ns="orrery-browser-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    echo "$ns" >>"$tmp/namespaces"
    echo "ORRERY__REDIS__URL=$ORRERY_BROWSER_REDIS_URL"
    echo "ORRERY__REDIS__NAMESPACE=$ns"
  fi
}

# start_server PORT SETTINGS... : starts Orrery and waits until it is ready
start_server() {
  local port=$1; shift
  mkdir -p "$tmp/data"
  env "ORRERY__SERVER__BIND=127.0.0.1:$port" "$@" "$bin" >>"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/ready")" = 200 ] && return 0
    sleep 0.1
  done
  echo "browser: orrery did not start" >&2
  cat "$tmp/server.log" >&2
  exit 1
}

allow_args=()
for a in "${ALLOWED[@]}"; do allow_args+=(--allow "$a"); done

# walk NAME BASE [walk.mjs options...]
walk() {
  local name=$1 base=$2; shift 2
  log "walking $name at $base"
  ORRERY_NODE_MODULES="$node_dir/node_modules" node "$root/tests/browser/walk.mjs" \
    --base "$base" --ids "$tmp/ids.json" --out "$out/$name" "${allow_args[@]}" "$@" || {
    echo "browser: $name failed (report: $out/$name/report.json)" >&2
    cat "$tmp/server.log" | tail -50 >&2
    return 1
  }
}

rm -rf "$out"
mkdir -p "$out"
failed=0
for ui in $uis; do
  mapfile -t store < <(storage "$ui")
  [ -f "$tmp/dbs" ] && mapfile -t dbs <"$tmp/dbs"
  [ -f "$tmp/namespaces" ] && mapfile -t namespaces <"$tmp/namespaces"
  port=$(free_port)
  ui_dir=()
  [ "$ui" = orrery ] || ui_dir=("ORRERY__UI__DIR=$ui_root/$ui")
  start_server "$port" "${store[@]}" "${ui_dir[@]}"
  log "seeding $ui with the prefect client"
  (cd "$tmp" && PREFECT_API_URL="http://127.0.0.1:$port/api" PREFECT_HOME="$tmp/home-$ui" \
    PREFECT_LOGGING_LEVEL=WARNING PREFECT_SERVER_ANALYTICS_ENABLED=false \
    "$py" "$root/tests/browser/seed.py" | tail -1 >"$tmp/ids.json")
  if [ "$ui" = orrery ]; then
    log "checking Orrery's pages"
    ORRERY_NODE_MODULES="$node_dir/node_modules" node "$root/tests/browser/orrery.mjs" \
      --base "http://127.0.0.1:$port" --ids "$tmp/ids.json" --out "$out/orrery" || {
      echo "browser: Orrery's UI failed (report: $out/orrery/report.json)" >&2
      tail -50 "$tmp/server.log" >&2
      failed=1
    }
    stop_server
    continue
  fi
  walk "$ui" "http://127.0.0.1:$port" || failed=1
  if [ "$ui" = ui-v2 ] && [ "${ORRERY_BROWSER_TWO_HOSTS:-1}" = 1 ]; then
    stop_server
    start_server "$port" "${store[@]}" "ORRERY__UI__DIR=$ui_root/$ui" \
      ORRERY__SERVER__API_HOST=api.orrery.test ORRERY__SERVER__APP_HOST=app.orrery.test
    walk "$ui-two-hosts" "http://app.orrery.test:$port" \
      --resolve "MAP *.orrery.test 127.0.0.1" --api-host "api.orrery.test:$port" || failed=1
  fi
  stop_server
done
[ "$failed" = 0 ] && log "every page of every UI answered (screenshots in $out)"
exit "$failed"
