-- rtchat's one schema, in versioned sections (src/db/mod.rs applies them at start-up, in one
-- transaction, under an advisory lock so several processes starting together do not race):
--
--   `-- @base`           the tables of version 1, for a new database;
--   `-- @migration N: `  the steps that take a database from version N-1 to N, in order; each
--                        statement is idempotent (IF NOT EXISTS), so a step can run again;
--   `-- @functions`      the functions, replaced whenever the version moves (and on a new
--                        database), so a process never runs functions newer than its tables.
--
-- `schema_version` records each version applied. A database at this build's version is left
-- alone; a newer one makes the process refuse to start. A new version appends a migration
-- section below the last one and never edits an applied one.

-- @base
CREATE TABLE IF NOT EXISTS schema_version (
    version     integer     NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schema_version_pkey PRIMARY KEY (version)
);

CREATE TABLE IF NOT EXISTS users (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- The user's event counter: the seq of the last event appended for them. Bumped under
    -- this row's lock in the transaction that appends the event (see src/events.rs).
    last_seq      bigint      NOT NULL DEFAULT 0,
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
-- Emails are unique case-insensitively (register's 409) and found whole (login, GET /users?q=:
-- pattern_ops indexes serve equality too).
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email) text_pattern_ops);
-- GET /users?q= matches a name prefix (LIKE 'prefix%' needs pattern_ops outside the C locale).
CREATE INDEX IF NOT EXISTS users_name_prefix_idx ON users (lower(name) text_pattern_ops);

CREATE TABLE IF NOT EXISTS chats (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    type             text        NOT NULL,
    title            text,
    creator_id       bigint      NOT NULL,
    is_active        boolean     NOT NULL DEFAULT true,
    -- 'low:high' user ids of a private chat; unique, so a pair has one private chat even
    -- when both users create it at the same moment.
    private_key      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Bumped by each new message: GET /chats sorts by it.
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chats_pkey PRIMARY KEY (id),
    CONSTRAINT chats_type_check CHECK (type IN ('private', 'group')),
    CONSTRAINT chats_creator_fkey FOREIGN KEY (creator_id) REFERENCES users (id),
    CONSTRAINT chats_private_key_key UNIQUE (private_key)
);

CREATE TABLE IF NOT EXISTS chat_members (
    chat_id              bigint      NOT NULL,
    user_id              bigint      NOT NULL,
    joined_at            timestamptz NOT NULL DEFAULT now(),
    -- The read cursor; only moves forward.
    last_read_message_id bigint,
    CONSTRAINT chat_members_pkey PRIMARY KEY (chat_id, user_id),
    CONSTRAINT chat_members_chat_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    CONSTRAINT chat_members_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
-- GET /chats: the chats of one user.
CREATE INDEX IF NOT EXISTS chat_members_user_idx ON chat_members (user_id, chat_id);

CREATE TABLE IF NOT EXISTS messages (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    chat_id    bigint      NOT NULL,
    sender_id  bigint      NOT NULL,
    text       text        NOT NULL,
    client_id  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz,
    CONSTRAINT messages_pkey PRIMARY KEY (id),
    CONSTRAINT messages_chat_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    CONSTRAINT messages_sender_fkey FOREIGN KEY (sender_id) REFERENCES users (id),
    -- Idempotent send: one message per (chat, sender, client_id). NULL client_ids never clash.
    CONSTRAINT messages_client_id_key UNIQUE (chat_id, sender_id, client_id)
);
-- Message history pages (before/after cursors), last_message and unread counts.
CREATE INDEX IF NOT EXISTS messages_chat_id_idx ON messages (chat_id, id);

-- The durable event log. An event's body is stored once in `events`; `user_events` gives
-- each recipient its own consecutive seq pointing at it. See src/events.rs.
CREATE TABLE IF NOT EXISTS events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    type       text        NOT NULL,
    -- The payload JSON exactly as sent on the socket, serialised once.
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (id)
);
-- Retention prunes by age.
CREATE INDEX IF NOT EXISTS events_created_at_idx ON events (created_at);

CREATE TABLE IF NOT EXISTS user_events (
    user_id    bigint      NOT NULL,
    seq        bigint      NOT NULL,
    event_id   bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Replay reads `WHERE user_id = $1 AND seq > $2 ORDER BY seq`: this key serves it.
    CONSTRAINT user_events_pkey PRIMARY KEY (user_id, seq)
);
-- Retention prunes by age.
CREATE INDEX IF NOT EXISTS user_events_created_at_idx ON user_events (created_at);


-- Login sessions. An access token names its session (`sid`); a refresh token is a random
-- secret stored only as its SHA-256. Each refresh rotates the token: the old one is marked
-- used, and presenting a used one again revokes the whole session (theft detection).
CREATE TABLE IF NOT EXISTS sessions (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
-- Logout of all sessions of a user.
CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (user_id);
-- Each process loads recently revoked sessions at start and at every sweep.
CREATE INDEX IF NOT EXISTS sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash bytea       NOT NULL,
    session_id bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (token_hash),
    CONSTRAINT refresh_tokens_session_fkey FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
);

-- Login attempts per key (`email:...`, `addr:...`) in fixed 5-minute windows, shared by all
-- processes so that a brute force through N processes is limited as one (src/limits.rs).
CREATE TABLE IF NOT EXISTS login_attempts (
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    attempts     integer     NOT NULL,
    CONSTRAINT login_attempts_pkey PRIMARY KEY (key)
);

-- @migration 2: email keys, process leases, and the indexes that session pruning needs
-- Email identity (src/identity.rs): the key under which an email is unique and found (NFC,
-- full Unicode case folding, NFC), computed in Rust since PostgreSQL 15 has no full case
-- folding. `email` keeps the address as typed, for display. Rows from before the key existed
-- get it at start-up; where two of them fold to one key the older keeps it and the newer
-- stays NULL, reachable by its exact address (the lower(email) index above).
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_key text;
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key_unique ON users (email_key);

-- One row per live rtchat process (src/leases.rs): renewed every RTCHAT_LEASE_RENEW_SECS,
-- lapsed after three missed renewals, deleted at clean shutdown. Each process counts the live
-- rows to share the rate limits evenly.
CREATE TABLE IF NOT EXISTS process_leases (
    process_id bigint      NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT process_leases_pkey PRIMARY KEY (process_id)
);

-- Retention deletes ended sessions (src/auth.rs, prune_sessions): this serves the cascade
-- that deletes their refresh tokens (without it, a scan of every refresh token per session).
CREATE INDEX IF NOT EXISTS refresh_tokens_session_idx ON refresh_tokens (session_id);
-- ... and this finds the expired sessions (the revoked ones: sessions_revoked_idx).
CREATE INDEX IF NOT EXISTS sessions_expires_at_idx ON sessions (expires_at);


-- @migration 3: messages v2: replies, mentions, reactions, and the indexes unread and search need
-- A reply names the message it answers, checked at send to be a message of the same chat. No
-- foreign key: when the original is deleted the reply keeps its id (clients show "deleted
-- message"), and a delete never has to rewrite the replies' rows behind their events.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS reply_to bigint;
-- The Message's `mentions`: members of the chat, ascending, without duplicates, at most 50.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS mentions bigint[] NOT NULL DEFAULT '{}';

-- One row per mention of a user by someone else (a self-mention has none), so a chat's
-- `unread_mentions` for its caller counts only that caller's mentions after the read cursor:
-- `WHERE user_id = $me AND chat_id = $c AND message_id > cursor` is a range of this key, and
-- its cost does not grow with the messages the caller has read.
CREATE TABLE IF NOT EXISTS message_mentions (
    user_id    bigint NOT NULL,
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    CONSTRAINT message_mentions_pkey PRIMARY KEY (user_id, chat_id, message_id),
    CONSTRAINT message_mentions_message_fkey FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE
);
-- A message's delete (and its chat's) cascades here through this.
CREATE INDEX IF NOT EXISTS message_mentions_message_idx ON message_mentions (message_id);

-- One row per (message, emoji, user). `id` orders a message's emoji by when each was first
-- added (the order of the Message's `reactions`).
CREATE TABLE IF NOT EXISTS message_reactions (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    message_id bigint      NOT NULL,
    emoji      text        NOT NULL,
    user_id    bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_reactions_pkey PRIMARY KEY (message_id, emoji, user_id),
    CONSTRAINT message_reactions_message_fkey FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
    CONSTRAINT message_reactions_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);

-- unread_count counts others' messages after the read cursor: with the sender in the index
-- that count is an index-only range scan after the cursor, never a visit of the read rows.
-- It serves the history pages and last_message as the index it replaces did.
CREATE INDEX IF NOT EXISTS messages_chat_id_sender_idx ON messages (chat_id, id) INCLUDE (sender_id);
DROP INDEX IF EXISTS messages_chat_id_idx;

-- GET /search/messages: every word of `q` must occur, the last as a prefix, in the text as the
-- `simple` configuration splits and lower-cases it (no stemming, no stop words: one rule for
-- every language). ASCII punctuation becomes spaces first: PostgreSQL's parser keeps emails,
-- URLs, paths and decimals (`bob@example.com`, `3.14`) as single tokens, while `q` is split at
-- every character that is not a letter or digit (src/store/search.rs), so `example` must be
-- a token of its own to be found. The query (src/store/search.sql) repeats this expression
-- to the letter, so that it matches the index: a rare word is then a bitmap of this index
-- filtered to the caller's chats; a common one is found sooner walking messages_pkey
-- backwards (newest first) and checking each row, which the planner picks from this
-- expression's statistics.
CREATE INDEX IF NOT EXISTS messages_text_search_idx ON messages USING gin (to_tsvector('simple', translate(text, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                ')));
-- The planner's choice between those two rests on how many messages the words match, which
-- it reads from this expression's most common lexemes. With the default statistics target it
-- took a prefix matching a third of the messages for a sixth of that and chose the GIN bitmap,
-- ten times slower than walking the ids (bench/search-explain.sh); ten times the lexemes
-- sampled brings the estimates close enough to pick right.
ALTER INDEX messages_text_search_idx ALTER COLUMN 1 SET STATISTICS 1000;

-- GET /unread sums, over the caller's chats (chat_members_user_idx), the two counts of a Chat
-- view: messages_chat_id_sender_idx serves unread_count and message_mentions_pkey
-- unread_mentions, each an index-only range after the read cursor stopped at 10,000 rows.
-- GET /chats/{id}/reads is a range of chat_members_pkey.
-- @migration 4: presence
-- When the user's last socket over all processes closed (src/delivery/presence.rs): set by
-- every socket close (the latest close wins), so two processes closing a user's last two
-- sockets at once need no lock between them; while a socket is open it is not shown. Not a
-- column of `users`: every event append locks the recipients' user rows to number their
-- events, so a presence batch writing thousands of them would hold up sends to those users
-- (and could deadlock with them).
CREATE TABLE IF NOT EXISTS presence_last_seen (
    user_id      bigint      NOT NULL,
    last_seen_at timestamptz NOT NULL,
    CONSTRAINT presence_last_seen_pkey PRIMARY KEY (user_id)
);

-- One row per (process, user) while that process holds at least one socket of the user,
-- written in batches by the process's presence task. A user is online while a row of theirs
-- belongs to a process with a live lease (process_leases); the rows of a lapsed process are
-- deleted by whichever live process notices first. No foreign key to the lease: a process
-- may write its first rows before its first lease renewal.
CREATE TABLE IF NOT EXISTS presence_sockets (
    process_id bigint NOT NULL,
    user_id    bigint NOT NULL,
    CONSTRAINT presence_sockets_pkey PRIMARY KEY (process_id, user_id)
);
-- Whether a user is online (GET /presence, the presence task's recomputation).
CREATE INDEX IF NOT EXISTS presence_sockets_user_idx ON presence_sockets (user_id);

-- @functions
-- Appends events to the log: inserts each event body once, locks every recipient's user row
-- in ascending id order and bumps its `users.last_seq` (the row lock is held until commit),
-- and writes their `user_events` rows. Ascending order is rtchat's one lock order for user rows, so
-- concurrent writers never deadlock; the lock makes seqs commit in order (src/events.rs).
-- Deliveries are parallel arrays: recipient p_users[k] gets event number p_event_index[k]
-- (1-based, in p_types order); a user's seqs follow that order.
CREATE OR REPLACE FUNCTION rtchat_append_events(
    p_types text[], p_payloads text[], p_users bigint[], p_event_index int[]
) RETURNS TABLE (user_id bigint, seq bigint, event_index int)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_event_ids bigint[];
    v_users bigint[];
    v_firsts bigint[];
BEGIN
    WITH inserted AS (
        INSERT INTO events (type, payload)
        SELECT t, p FROM unnest(p_types, p_payloads) WITH ORDINALITY AS x(t, p, ord) ORDER BY ord
        RETURNING id
    )
    SELECT array_agg(id ORDER BY id) INTO v_event_ids FROM inserted;

    -- The recipients' counter rows: locked first, in ascending id order (rtchat's one lock
    -- order, so concurrent writers never wait on each other in a cycle), then bumped by one
    -- set-based UPDATE, whose own row order no longer matters (a single-row UPDATE per
    -- recipient cost ~7 µs each: most of a delivery's database time in large chats).
    PERFORM 1 FROM users WHERE id = ANY (p_users) ORDER BY id FOR NO KEY UPDATE;
    WITH counts AS (
        SELECT d.u, count(*) AS n FROM unnest(p_users) AS d(u) GROUP BY d.u
    ), bumped AS (
        UPDATE users SET last_seq = users.last_seq + c.n
        FROM counts c WHERE users.id = c.u
        RETURNING users.id, users.last_seq - c.n AS first
    )
    SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(first), '{}')
    INTO v_users, v_firsts FROM bumped;

    -- created_at is taken now, under the counter locks, so for each user it grows with seq
    -- and retention, pruning by age, only ever removes a prefix of a user's log.
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO user_events (user_id, seq, event_id, created_at)
        SELECT d.u,
               b.first + row_number() OVER (PARTITION BY d.u ORDER BY d.ord),
               v_event_ids[d.e],
               clock_timestamp()
        FROM unnest(p_users, p_event_index) WITH ORDINALITY AS d(u, e, ord)
        JOIN unnest(v_users, v_firsts) AS b(u, first) ON b.u = d.u
        RETURNING user_events.user_id, user_events.seq, user_events.event_id
    )
    SELECT i.user_id, i.seq, e.idx::int
    FROM inserted i JOIN unnest(v_event_ids) WITH ORDINALITY AS e(id, idx) ON e.id = i.event_id;
END
$fn$;

-- Replaced by rtchat_send_messages (a batch of sends per call).
DROP FUNCTION IF EXISTS rtchat_send_message(bigint, bigint, text, text);

-- The v1 signature, replaced by the one below (replies and mentions).
DROP FUNCTION IF EXISTS rtchat_send_messages(bigint[], bigint[], text[], text[]);

-- Sends a batch of messages in one statement and one transaction (group commit: the
-- writer task in src/sends.rs collects the sends queued meanwhile). Input is parallel
-- arrays, one entry per send, in arrival order. Locks the chats in ascending id order (then
-- users ascending, in rtchat_append_events: rtchat's one lock order), reads the members after
-- the locks, answers a repeated client_id with the original (status 'repeat'; a repeat of a
-- send earlier in the same batch too), inserts the new messages in arrival order (so ids grow
-- with it inside each chat), and appends `new_message` for every member. The payload is the
-- Message JSON of the REST API (src/model.rs); the delivery property test compares the two.
-- Mentions come flattened: send k's are p_mentions[s+1 .. s+p_mention_counts[k]], s being the
-- counts before k, each send's ascending and without duplicates (the handler's work), so a
-- batch stays one round trip however many mentions it carries. A reply_to that is not a
-- message of the chat, or a mention of a non-member, is judged here under the chat lock.
-- One row per send, by its 1-based position `ord`.
-- status: 'created' | 'repeat' | 'not_found' | 'inactive' | 'bad_reply_to' | 'bad_mentions'
-- (then `bad_mentions` names the mentioned ids that are not members).
CREATE OR REPLACE FUNCTION rtchat_send_messages(
    p_chats bigint[], p_senders bigint[], p_texts text[], p_client_ids text[],
    p_reply_tos bigint[], p_mention_counts int[], p_mentions bigint[]
) RETURNS TABLE (ord int, status text, message_id bigint, created_at timestamptz, payload text,
                 users bigint[], seqs bigint[], bad_mentions bigint[])
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_starts int[];
    v_status text[];
    v_prev bigint[];
    v_bad text[];
    v_new_ords int[];
    v_new_ids bigint[];
    v_new_created timestamptz[];
    v_payloads text[];
    v_users bigint[];
    v_index int[];
BEGIN
    -- The chat rows, locked in ascending id order (the lock every change of a chat or its
    -- members takes): concurrent batches, and the other writers, which lock one chat then
    -- users, never wait on each other in a cycle.
    PERFORM 1 FROM chats WHERE id = ANY (p_chats) ORDER BY id FOR NO KEY UPDATE;

    -- Where each send's mentions start in p_mentions (0-based).
    v_starts := ARRAY(
        SELECT coalesce(sum(x.n) OVER (ORDER BY x.k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::int
        FROM unnest(p_mention_counts) WITH ORDINALITY AS x(n, k) ORDER BY x.k);

    -- New statements from here on, so new snapshots taken after the locks: they see every
    -- membership change and every earlier send of a client_id, as those take the same locks.
    SELECT array_agg(j.status ORDER BY j.ord), array_agg(j.prev ORDER BY j.ord),
           array_agg(j.bad::text ORDER BY j.ord)
    INTO v_status, v_prev, v_bad
    FROM (
        SELECT v.ord,
               CASE
                   -- The same client_id earlier in this batch, among the sends that would
                   -- be created: a repeat of that one.
                   WHEN v.status = 'created' AND v.client_id IS NOT NULL
                        AND v.ord > min(v.ord) FILTER (WHERE v.status = 'created') OVER (
                            PARTITION BY v.chat, v.sender, v.client_id) THEN 'repeat_in_batch'
                   ELSE v.status
               END AS status,
               v.prev, v.bad
        FROM (
            SELECT r.ord, r.chat, r.sender, r.client_id,
                   CASE
                       WHEN c.id IS NULL OR m.user_id IS NULL THEN 'not_found'
                       WHEN p.id IS NOT NULL THEN 'repeat'
                       WHEN NOT c.is_active THEN 'inactive'
                       WHEN r.reply_to IS NOT NULL AND NOT EXISTS (
                            SELECT 1 FROM messages q WHERE q.id = r.reply_to AND q.chat_id = r.chat)
                            THEN 'bad_reply_to'
                       WHEN b.ids IS NOT NULL THEN 'bad_mentions'
                       ELSE 'created'
                   END AS status,
                   p.id AS prev, b.ids AS bad
            FROM unnest(p_chats, p_senders, p_client_ids, p_reply_tos)
                 WITH ORDINALITY AS r(chat, sender, client_id, reply_to, ord)
            LEFT JOIN chats c ON c.id = r.chat
            LEFT JOIN chat_members m ON m.chat_id = r.chat AND m.user_id = r.sender
            LEFT JOIN messages p ON p.chat_id = r.chat AND p.sender_id = r.sender AND p.client_id = r.client_id
            -- The mentioned ids that are not members (none without mentions: an empty unnest).
            LEFT JOIN LATERAL (
                SELECT array_agg(u.id ORDER BY u.id) AS ids
                FROM unnest(p_mentions[v_starts[r.ord] + 1 : v_starts[r.ord] + p_mention_counts[r.ord]]) AS u(id)
                WHERE NOT EXISTS (
                    SELECT 1 FROM chat_members mm WHERE mm.chat_id = r.chat AND mm.user_id = u.id)
            ) b ON true
        ) v
    ) j;

    -- The new messages in arrival order: the identity hands out ids in the order the rows
    -- come, so the k-th new id belongs to the k-th new send.
    v_new_ords := ARRAY(SELECT i FROM generate_subscripts(v_status, 1) AS i
                        WHERE v_status[i] = 'created' ORDER BY i);
    WITH inserted AS (
        INSERT INTO messages (chat_id, sender_id, text, client_id, reply_to, mentions)
        SELECT p_chats[i], p_senders[i], p_texts[i], p_client_ids[i], p_reply_tos[i],
               p_mentions[v_starts[i] + 1 : v_starts[i] + p_mention_counts[i]]
        FROM unnest(v_new_ords) WITH ORDINALITY AS x(i, k) ORDER BY k
        RETURNING id, created_at
    )
    SELECT array_agg(id ORDER BY id), array_agg(created_at ORDER BY id)
    INTO v_new_ids, v_new_created FROM inserted;
    -- GET /chats sorts by activity: only chats that got a message move up.
    UPDATE chats SET last_activity_at = now()
    WHERE id = ANY (ARRAY(SELECT p_chats[i] FROM unnest(v_new_ords) AS i));
    -- Each mention of someone other than the sender, for unread_mentions. Skipped whole
    -- when the batch mentions nobody, the common case.
    IF cardinality(p_mentions) > 0 THEN
        INSERT INTO message_mentions (user_id, chat_id, message_id)
        SELECT u.id, p_chats[x.i], v_new_ids[x.k]
        FROM unnest(v_new_ords) WITH ORDINALITY AS x(i, k)
        CROSS JOIN LATERAL unnest(p_mentions[v_starts[x.i] + 1 : v_starts[x.i] + p_mention_counts[x.i]]) AS u(id)
        WHERE u.id <> p_senders[x.i]
        ON CONFLICT DO NOTHING;
    END IF;

    v_payloads := ARRAY(
        SELECT json_build_object(
            'id', v_new_ids[k], 'chat_id', p_chats[i], 'sender_id', p_senders[i],
            'text', p_texts[i],
            'created_at', to_char(v_new_created[k] AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'edited_at', NULL, 'client_id', p_client_ids[i],
            'reply_to', p_reply_tos[i],
            'mentions', to_json(coalesce(p_mentions[v_starts[i] + 1 : v_starts[i] + p_mention_counts[i]], '{}')),
            'reactions', '[]'::json)::text
        FROM unnest(v_new_ords) WITH ORDINALITY AS x(i, k) ORDER BY k);

    -- Every member of each new message's chat, message by message.
    SELECT array_agg(m.user_id ORDER BY x.k, m.user_id), array_agg(x.k::int ORDER BY x.k, m.user_id)
    INTO v_users, v_index
    FROM unnest(v_new_ords) WITH ORDINALITY AS x(i, k)
    JOIN chat_members m ON m.chat_id = p_chats[x.i];

    RETURN QUERY
    WITH appended AS (
        SELECT a.event_index AS k, array_agg(a.user_id ORDER BY a.user_id) AS users,
               array_agg(a.seq ORDER BY a.user_id) AS seqs
        FROM rtchat_append_events(array_fill('new_message'::text, ARRAY[cardinality(v_new_ords)]),
                                  v_payloads, v_users, v_index) a
        WHERE cardinality(v_new_ords) > 0
        GROUP BY a.event_index
    ),
    created AS (
        SELECT x.i AS ord, x.k, v_new_ids[x.k] AS id
        FROM unnest(v_new_ords) WITH ORDINALITY AS x(i, k)
    )
    SELECT s.i::int,
           CASE WHEN v_status[s.i] = 'repeat_in_batch' THEN 'repeat' ELSE v_status[s.i] END,
           CASE v_status[s.i]
               WHEN 'created' THEN v_new_ids[cr.k]
               WHEN 'repeat' THEN v_prev[s.i]
               WHEN 'repeat_in_batch' THEN (
                   SELECT c2.id FROM created c2
                   WHERE p_chats[c2.ord] = p_chats[s.i] AND p_senders[c2.ord] = p_senders[s.i]
                     AND p_client_ids[c2.ord] = p_client_ids[s.i])
           END,
           v_new_created[cr.k], v_payloads[cr.k], ap.users, ap.seqs, v_bad[s.i]::bigint[]
    FROM generate_subscripts(v_status, 1) AS s(i)
    LEFT JOIN created cr ON cr.ord = s.i
    LEFT JOIN appended ap ON ap.k = cr.k
    ORDER BY s.i;
END
$fn$;
