#!/usr/bin/env bash
# The 20,000-socket reconnect storm, back to back for several builds in one sitting: two
# server processes on one PostgreSQL, two generators of 10,000 sockets each (own source
# addresses) dropping at the same --drop-at, CPU per reconnect from each server's own pid.
# Usage: bench/storm2.sh ROUNDS BENCH_BIN NAME=DIR [NAME=DIR ...]  (DIR holds a release rtchat;
# one rtchat-bench drives every build, so all are measured alike). As root (PostgreSQL runs
# as `postgres`); the PostgreSQL of bench/compare.sh is reused.
set -uo pipefail
rounds=$1; bench=$2; shift 2
PGBIN=/usr/lib/postgresql/15/bin
PG=/tmp/rtbench/pg
out=${OUT:-target/rtchat-bench/storm2}; mkdir -p $out
if [ ! -f $PG/PG_VERSION ]; then
  rm -rf /tmp/rtbench; mkdir -p $PG; chown -R postgres /tmp/rtbench
  runuser -u postgres -- $PGBIN/initdb -D $PG -U postgres --auth=trust >/dev/null
fi
runuser -u postgres -- $PGBIN/pg_ctl -D $PG -l $PG.log -w -o \
  "-c listen_addresses='' -c unix_socket_directories=$PG -c max_connections=300 -c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=15min" start >/dev/null || true
export JWT_SECRET=bench-secret-bench-secret-0123456789
RATES="RTCHAT_RATE_MESSAGES_PER_SEC=1000000 RTCHAT_RATE_MESSAGES_BURST=1000000 RTCHAT_RATE_TYPING_PER_SEC=1000000 RTCHAT_RATE_WRITES_PER_SEC=1000000 RTCHAT_RATE_WRITES_BURST=1000000 RTCHAT_RATE_CHAT_CHANGES_PER_MIN=1000000 RTCHAT_RATE_CHAT_CHANGES_BURST=1000000"
ulimit -n 100000
for r in $(seq 1 $rounds); do
  for spec in "$@"; do
    name=${spec%%=*}; dir=${spec#*=}
    db=$(echo storm_${name}_$r | tr A-Z a-z)
    runuser -u postgres -- $PGBIN/psql -h $PG -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    export DATABASE_URL="host=$PG user=postgres dbname=$db"
    env $RATES RTCHAT_ADDR=127.0.0.1:8100 RTCHAT_LOG=warn $dir/rtchat > $out/$db.a.log 2>&1 & a=$!
    for _ in $(seq 1 100); do curl -fsS -m 1 http://127.0.0.1:8100/readyz >/dev/null 2>&1 && break; sleep 0.2; done
    env $RATES RTCHAT_ADDR=127.0.0.1:8101 RTCHAT_LOG=warn $dir/rtchat > $out/$db.b.log 2>&1 & b=$!
    for _ in $(seq 1 100); do curl -fsS -m 1 http://127.0.0.1:8101/readyz >/dev/null 2>&1 && break; sleep 0.2; done
    pgpid=$(head -1 $PG/postmaster.pid)
    drop=$(( $(date +%s) + 75 ))
    timeout 400 $bench --url http://127.0.0.1:8100 --server-pid $a --pg-pid $pgpid --source-ip 127.0.1.1 --json $out/$db.a.json \
      storm --sockets 10000 --chat-size 10 --backlog 5 --live-rate 100 --drop-at $drop > $out/$db.a.txt 2>&1 & ga=$!
    timeout 400 $bench --url http://127.0.0.1:8101 --server-pid $b --source-ip 127.0.2.1 --json $out/$db.b.json \
      storm --sockets 10000 --chat-size 10 --backlog 5 --live-rate 100 --drop-at $drop > $out/$db.b.txt 2>&1 & gb=$!
    wait $ga; ra=$?; wait $gb; rb=$?
    echo "$db rc=$ra/$rb"
    for side in a b; do
      python3 - "$out/$db.$side.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for row in d.get("rows", d.get("results", [])):
    m = row.get("metrics", {})
    cpu = m.get("cpu_per_reconnect", {})
    print("  ", row.get("case"), "| lost", row.get("lost"), "dup", row.get("duplicated"),
          "| server µs/reconnect", cpu.get("server_us"), "pg µs", cpu.get("postgres_us"),
          "| presence first/storm/offline", m.get("presence_frames"), m.get("presence_frames_storm"), m.get("presence_offline_frames"),
          "| notes:", str(row.get("notes", ""))[:200])
PY
    done
    kill -TERM $a $b; wait $a $b 2>/dev/null
    runuser -u postgres -- $PGBIN/psql -h $PG -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null
  done
done
