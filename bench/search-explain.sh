#!/usr/bin/env bash
# Measures GET /search/messages' query on a realistic volume: 1,000,000 messages in 1,000
# chats, the searching user (id 1) a member of 50 of them, and user 1002 in one quiet chat.
# Starts a throwaway PostgreSQL 15 (as user postgres) in $DIR on $PORT, loads schema.sql,
# generates the data with generate_series, and prints EXPLAIN (ANALYZE, BUFFERS) of the exact
# statement of src/store/search.sql for rare and common words, prefixes and two words.
#
#   bench/search-explain.sh            # build the data (a few minutes on 2 cores), explain
#   KEEP=1 bench/search-explain.sh     # leave the cluster running for more experiments
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DIR=${DIR:-/tmp/rtchat-search-bench}
PORT=${PORT:-55439}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_() { as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h /tmp -p "$PORT" -U postgres -d search "$@"; }

if [ ! -f "$DIR/PG_VERSION" ]; then
    mkdir -p "$DIR" && chown postgres "$DIR" 2>/dev/null || true
    as_pg "$BIN/initdb" -D "$DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi
if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/log" -w \
        -o "-p $PORT -k /tmp -c listen_addresses='' -c shared_buffers=256MB -c max_wal_size=4GB" start >/dev/null
fi
trap '[ -n "${KEEP:-}" ] || as_pg "$BIN/pg_ctl" -D "$DIR" -m fast stop >/dev/null' EXIT

if ! psql_ -c 'SELECT 1' >/dev/null 2>&1; then
    as_pg "$BIN/createdb" -h /tmp -p "$PORT" -U postgres search
fi
if [ "$(psql_ -tAc "SELECT count(*) FROM pg_tables WHERE tablename = 'messages'")" = 0 ]; then
    psql_ -f schema.sql >/dev/null
fi
if [ "$(psql_ -tAc 'SELECT count(*) FROM messages')" = 0 ]; then
    echo "generating 1,000,000 messages..." >&2
    psql_ <<'SQL'
-- User 1 searches; user c+1 owns chat c and sends its messages; user 1 is in chats 1..50.
INSERT INTO users (email, name, password_hash)
SELECT 'u' || g || '@example.com', 'u' || g, 'x' FROM generate_series(1, 1001) g;
INSERT INTO chats (type, title, creator_id) SELECT 'group', 'c' || g, g + 1 FROM generate_series(1, 1000) g;
INSERT INTO chat_members (chat_id, user_id) SELECT g, g + 1 FROM generate_series(1, 1000) g;
INSERT INTO chat_members (chat_id, user_id) SELECT g, 1 FROM generate_series(1, 50) g;
-- Messages interleave over the chats as real traffic does. Words: `hello` in half of them,
-- `привет` in a tenth, one from a skewed 20,000-word vocabulary (`wordN`), two from a flat
-- 50,000-word one (`wN`), and `zanzibar` in about 50 (about 3 in user 1's chats).
ALTER TABLE messages SET (autovacuum_enabled = false);
INSERT INTO messages (chat_id, sender_id, text)
SELECT 1 + g % 1000, 2 + g % 1000,
       concat_ws(' ',
           CASE WHEN g % 2 = 0 THEN 'Hello' END,
           CASE WHEN g % 10 = 3 THEN 'Привет' END,
           'word' || floor(20000 * random() ^ 3)::int,
           'w' || floor(50000 * random())::int,
           'w' || floor(50000 * random())::int,
           CASE WHEN g % 20011 = 5 THEN 'Zanzibar' END,
           'the end')
FROM generate_series(1, 1000000) g;
-- User 1002 has one quiet chat whose 20 messages are older than everything else (ids
-- below 1): walking the ids newest first would pass all 1,000,000 before reaching them.
INSERT INTO users (email, name, password_hash) VALUES ('quiet@example.com', 'quiet', 'x');
INSERT INTO chats (type, title, creator_id) VALUES ('group', 'quiet', 1002);
INSERT INTO chat_members (chat_id, user_id) VALUES (1001, 1002);
INSERT INTO messages (id, chat_id, sender_id, text) OVERRIDING SYSTEM VALUE
SELECT -g, 1001, 1002, 'hello from long ago ' || g FROM generate_series(1, 20) g;
ALTER TABLE messages RESET (autovacuum_enabled);
VACUUM ANALYZE messages;
VACUUM ANALYZE chat_members;
SQL
fi

# The statement of src/store/search.sql, with its parameters inlined as the custom plan sees
# them: $1 the chats (user 1's, or the one given), $2 the tsquery, $3 before, $4 limit + 1.
explain() {
    local what=$1 tsquery=${2//&/\\&} chats
    chats=$(psql_ -tAc "SELECT array_agg(chat_id ORDER BY chat_id) FROM chat_members
                        WHERE user_id = ${USER_ID:-1} AND (${3:-NULL}::bigint IS NULL OR chat_id = ${3:-NULL})")
    echo "== $what: tsquery $2, chats of user ${USER_ID:-1}: $chats"
    psql_ <<SQL
SET plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
$(sed -n '/^-- search-sql-begin/,/^-- search-sql-end/p' src/store/search.sql | grep -v '^--' \
    | sed -e "s/{columns}/m.*/" -e "s/\\\$1/'$chats'::bigint[]/g" -e "s/\\\$2/'$tsquery'/g" \
          -e "s/\\\$3/9223372036854775807/g" -e "s/\\\$4/21/g");
SQL
}
explain "rare word" "''zanzibar'':*"
explain "common word" "''hello'':*"
explain "common prefix" "''hel'':*"
explain "Russian prefix" "''прив'':*"
explain "two words" "''hello'' & ''word12'':*"
explain "mid-frequency prefix (about 1%)" "''word1'':*"
explain "mid-frequency prefix (about 0.4%)" "''w123'':*"
explain "uncommon prefix (about 0.04%)" "''w4567'':*"
explain "no match" "''nosuchword'':*"
explain "common word in one chat" "''hello'':*" 7
USER_ID=1002 explain "common word, one quiet chat of old messages" "''hello'':*"
