#!/usr/bin/env bash
# What PostgreSQL receives for a fixed lifecycle load: every statement an Orrery binary sends,
# counted, so two binaries can be compared statement for statement (a regression in round trips
# shows here when throughput numbers are too noisy to say).
#
#   bash bench/pg-statements.sh BIN LABEL
#
# Creates database st_LABEL, turns on log_statement=all for it, runs 4 lifecycle clients for 5 s
# against BIN on it (Redis at 127.0.0.1:6379), then prints the lifecycles done and the statements
# by text, most frequent first. Needs the local PostgreSQL's log at the path below (Debian's
# default) and the load generator (bench/run.sh builds it).
set -u
cd "$(dirname "$0")/.."
bin=$1 label=$2
case "$bin" in /*) ;; *) bin="$(pwd)/$bin" ;; esac
loadgen=bench/target/release/orrery-loadgen
[ -x "$loadgen" ] || CARGO_TARGET_DIR=bench/target cargo build --quiet --release --manifest-path bench/loadgen/Cargo.toml
port=$((20000 + RANDOM % 10000))
dir=$(mktemp -d); mkdir -p $dir/data
db=st_$label
PGOPTIONS=--client-min-messages=warning psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db" -c "create database $db" >/dev/null
env ORRERY__SERVER__BIND=127.0.0.1:$port ORRERY__DATABASE__DATA_DIR=$dir/data ORRERY__DATABASE__URL=postgres://postgres@127.0.0.1:5432/$db ORRERY__REDIS__URL=redis://127.0.0.1:6379 ORRERY__REDIS__NAMESPACE=st-$label-$RANDOM $bin > $dir/server.log 2>&1 &
pid=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:$port/api/ready >/dev/null && break; sleep 0.3; done
sleep 3
psql -h 127.0.0.1 -U postgres -qc "alter database $db set log_statement='all'" >/dev/null
# new connections pick the setting up: restart the server so its pool reconnects
kill $pid; wait $pid 2>/dev/null
log=${PG_LOG:-/var/log/postgresql/postgresql-15-main.log}
start=$(wc -l < $log)
env ORRERY__SERVER__BIND=127.0.0.1:$port ORRERY__DATABASE__DATA_DIR=$dir/data ORRERY__DATABASE__URL=postgres://postgres@127.0.0.1:5432/$db ORRERY__REDIS__URL=redis://127.0.0.1:6379 ORRERY__REDIS__NAMESPACE=st-$label-$RANDOM $bin > $dir/server2.log 2>&1 &
pid=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:$port/api/ready >/dev/null && break; sleep 0.3; done
$loadgen lifecycle --url http://127.0.0.1:$port/api --clients 4 --duration 5s --warmup 0s > $dir/lc.json 2>$dir/lc.err
sleep 2
kill $pid; wait $pid 2>/dev/null
tail -n +$((start+1)) $log | grep "@$db " | grep -E "LOG:  (statement|execute)" | sed -E 's/.*LOG:  (statement|execute [^:]*): //' | cut -c1-90 > $dir/stmts
n=$(grep -o '"lifecycles_total":[0-9]*' $dir/lc.json | cut -d: -f2)
echo "$label lifecycles_total=$n statements=$(wc -l < $dir/stmts)"
sort $dir/stmts | uniq -c | sort -rn | head -25
psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db" >/dev/null
rm -rf "$dir"
