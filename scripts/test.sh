#!/usr/bin/env bash
# The test command: formatting, lints, then the whole test suite on both backends —
# SQLite + in-process brokers, and PostgreSQL + Redis (started here when they are not running).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${ORRERY_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${ORRERY_TEST_REDIS_BASE_URL:-redis://127.0.0.1:6379/0}"
started=$(date +%s)

step() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  step "starting PostgreSQL"
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  echo "PostgreSQL did not start" >&2; exit 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  step "starting Redis"
  if ! command -v redis-server >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 1; done
  echo "Redis did not start" >&2; exit 1
}

run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-targets --no-fail-fast
  else
    cargo test --workspace --no-fail-fast
  fi
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

step "tests: SQLite + memory brokers"
env -u ORRERY_TEST_DATABASE_URL -u ORRERY_TEST_REDIS_URL bash -c "$(declare -f run_tests); run_tests"

step "compat (prefect==3.9.1 client): SQLite + memory brokers"
cargo build --quiet --bin orrery
ORRERY_BIN=target/debug/orrery ./scripts/compat.sh -q

step "browser (Orrery's UI, Prefect's two web UIs, and the two-host layout): SQLite + memory brokers"
ORRERY_BIN=target/debug/orrery ./scripts/browser.sh

ensure_postgres
ensure_redis
# Databases left by an interrupted earlier run.
psql "$PG_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'orrery_test_%'" |
  while read -r db; do psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done

step "tests: PostgreSQL + Redis"
ORRERY_TEST_DATABASE_URL="$PG_URL" ORRERY_TEST_REDIS_URL="$REDIS_URL" \
  bash -c "$(declare -f run_tests); run_tests"

step "compat (prefect==3.9.1 client): PostgreSQL + Redis"
ORRERY_BIN=target/debug/orrery ORRERY_COMPAT_DATABASE_URL="$PG_URL" ORRERY_COMPAT_REDIS_URL="$REDIS_URL" \
  ./scripts/compat.sh -q

step "browser (Orrery's UI and Prefect's React UI): PostgreSQL + Redis"
ORRERY_BIN=target/debug/orrery ORRERY_BROWSER_DATABASE_URL="$PG_URL" ORRERY_BROWSER_REDIS_URL="$REDIS_URL" \
  ORRERY_BROWSER_UIS="orrery ui-v2" ORRERY_BROWSER_TWO_HOSTS=0 ./scripts/browser.sh

step "all tests passed"
