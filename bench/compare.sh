#!/usr/bin/env bash
# Back-to-back benchmark of several rtchat builds in one sitting: send max (128 connections)
# and fan-out max (100 members x 20 chats), interleaved A B C, A B C, ... ROUNDS times.
# Usage: bench/compare.sh ROUNDS NAME=DIR [NAME=DIR ...]  (DIR holds rtchat and rtchat-bench)
# (SCENARIOS="send fanout" by default; each DIR holds a release build of rtchat and rtchat-bench,
# e.g. copied from target/release at each commit). As root: PostgreSQL runs as `postgres`.
set -uo pipefail
rounds=$1; shift
PGBIN=/usr/lib/postgresql/15/bin
PG=/tmp/rtbench/pg
out=${OUT:-target/rtchat-bench/compare}; mkdir -p $out
if [ ! -f $PG/PG_VERSION ]; then
  rm -rf /tmp/rtbench; mkdir -p $PG; chown -R postgres /tmp/rtbench
  runuser -u postgres -- $PGBIN/initdb -D $PG -U postgres --auth=trust >/dev/null
fi
runuser -u postgres -- $PGBIN/pg_ctl -D $PG -l $PG.log -w -o \
  "-c listen_addresses='' -c unix_socket_directories=$PG -c max_connections=300 -c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=15min" start >/dev/null || true
export JWT_SECRET=bench-secret-bench-secret-0123456789
RATES="RTCHAT_RATE_MESSAGES_PER_SEC=1000000 RTCHAT_RATE_MESSAGES_BURST=1000000 RTCHAT_RATE_TYPING_PER_SEC=1000000 RTCHAT_RATE_WRITES_PER_SEC=1000000 RTCHAT_RATE_WRITES_BURST=1000000 RTCHAT_RATE_CHAT_CHANGES_PER_MIN=1000000 RTCHAT_RATE_CHAT_CHANGES_BURST=1000000 RTCHAT_RATE_LOGIN_PER_EMAIL=1000000 RTCHAT_RATE_LOGIN_PER_ADDR=1000000 RTCHAT_RATE_LOGIN_PER_EMAIL_GLOBAL=1000000 RTCHAT_RATE_REGISTER_PER_ADDR=1000000 RTCHAT_RATE_REGISTER_PER_EMAIL=1000000"
n=0
for r in $(seq 1 $rounds); do
  for scenario in ${SCENARIOS:-send fanout}; do
    for spec in "$@"; do
      name=${spec%%=*}; dir=${spec#*=}; n=$((n+1))
      db=$(echo bench_${name}_${scenario}_$r | tr A-Z a-z)
      runuser -u postgres -- $PGBIN/psql -h $PG -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
      export DATABASE_URL="host=$PG user=postgres dbname=$db"
      env $RATES RTCHAT_ADDR=127.0.0.1:8100 RTCHAT_LOG=warn $dir/rtchat > $out/$db.server.log 2>&1 &
      server=$!
      for _ in $(seq 1 100); do curl -fsS -m 1 http://127.0.0.1:8100/readyz >/dev/null 2>&1 && break; sleep 0.2; done
      pgpid=$(head -1 $PG/postmaster.pid)
      B="$dir/rtchat-bench --url http://127.0.0.1:8100 --server-pid $server --pg-pid $pgpid --json $out/$db.json"
      if [ $scenario = send ]; then
        timeout 300 $B send --rates max --connections 128 --duration-secs 10 > $out/$db.txt 2>&1
      else
        timeout 300 $B fanout --sizes 100 --sockets 2000 --rates max --duration-secs 8 > $out/$db.txt 2>&1
      fi
      echo "$db rc=$? $(grep -m1 -E '^\| (send|fanout)' $out/$db.txt)"
      kill -TERM $server; wait $server 2>/dev/null
      runuser -u postgres -- $PGBIN/psql -h $PG -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null
    done
  done
done
